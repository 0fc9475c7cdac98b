import type { Step } from '../engine/step.js';
import { type BootConfigKind, bootSetting, readBootConfig, requireBootConfig, settingsOperations } from '../facts/boot-config.js';

/**
 * What each kind of boot file is told. config.ini's setting is a stand-in for the C2's
 * `setenv nographics "1"`, not an equivalent: the C2 script deletes the video nodes from the device tree (reference odroid-c2/boot.ini lines 183-186,
 * `if test "${nographics}" = "1"; then fdt rm /meson-fb; ...`), freeing ~300 MB of reserved
 * memory, and HardKernel's C4 boot.ini has no such switch. Its only display step of its own is
 * odroid-c4/boot.ini line 34, `if test "${display_autodetect}" = "true"; then hdmitx edid; fi`,
 * fed from config.ini's [generic] by lines 24-25 (`load ... config.ini && ini generic`): setting
 * it false stops U-Boot probing the monitor. The HDMI drivers still load. monitor_onoff, the other
 * candidate, only reaches the kernel command line (line 40) and these files do not say which value
 * switches the output off, so it is left as it is.
 */
const SETTINGS: Record<BootConfigKind, Record<string, string>> = {
  'c2-boot.ini': { nographics: '1' },
  'config.ini': { display_autodetect: 'false' },
};

/**
 * Server mode: on the C2 boot.ini removes the video nodes from the device tree, which frees
 * the memory reserved for them and keeps the display hardware off (less power over USB).
 */
export const nographics: Step = {
  name: 'nographics',
  summary: 'boot without the video subsystem (setenv nographics "1")',
  async plan({ image }) {
    const config = await requireBootConfig(image);
    return settingsOperations(config, SETTINGS[config.kind]);
  },
  async applied(image) {
    const config = await readBootConfig(image);
    return config !== undefined && Object.entries(SETTINGS[config.kind]).every(([name, value]) => bootSetting(config, name) === value);
  },
};
