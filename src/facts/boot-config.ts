/** The boot partition's configuration file: where it is and the operations that change its settings. */
import { C2_BOOT_INI_HEADER, getEnv, setEnv, validateBootIni } from '../formats/hush.js';
import { setPersistentOverride } from '../formats/ini.js';
import { UserError } from '../errors.js';
import type { Operation } from '../engine/operations.js';
import type { IniSetting } from '../formats/ini.js';
import type { ImageView } from '../engine/step.js';

/** FAT ignores case: the path of a file in the boot partition's root as it is spelled there. */
export async function bootFile(image: ImageView, name: string): Promise<string | undefined> {
  const found = (await image.readdir('boot', '/')).find((file) => file.toLowerCase() === name);
  return found === undefined ? undefined : `/${found}`;
}

/**
 * Operations that change the kernel command line: `edit` rewrites boot.ini (e.g. with addBootArg).
 * On a C2 the result is checked against U-Boot's limits, and boot.ini.default, when present, gets
 * the whole new bootargs value as its persistent override: the bootini package replaces boot.ini
 * on upgrades and then re-applies only what boot.ini.default sets, so an argument added to
 * boot.ini alone would silently disappear. Fails before anything is written.
 */
export async function kernelArgsOperations(image: ImageView, what: string, edit: (bootIni: string) => string): Promise<Operation[]> {
  const bootIni = await bootFile(image, 'boot.ini');
  if (!bootIni) {
    const found = (await image.readdir('boot', '/')).join(', ') || 'nothing';
    throw new UserError(`the boot partition has no boot.ini to carry the kernel arguments (found: ${found}); use a HardKernel ODROID image`);
  }
  const isC2 = (text: string) => text.split('\n', 1)[0].replace(/\r$/, '') === C2_BOOT_INI_HEADER;
  const checkedEdit = (text: string) => {
    const edited = edit(text);
    if (isC2(text)) validateBootIni(edited);
    return edited;
  };
  const current = (await image.readText('boot', bootIni)) ?? '';
  const bootargs = getEnv(checkedEdit(current), 'bootargs');
  const operations: Operation[] = [{ op: 'edit', on: 'boot', path: bootIni, what, edit: checkedEdit }];
  const persistent = await bootFile(image, 'boot.ini.default');
  if (isC2(current) && persistent && bootargs !== undefined) {
    operations.push({
      op: 'edit',
      on: 'boot',
      path: persistent,
      what: 'bootargs kept across bootini package upgrades',
      edit: (text) => setPersistentOverride(text, 'bootargs', bootargs),
    });
  }
  return operations;
}

/**
 * Operations that make each `setenv name "value"` active in a C2 boot.ini, and the same override
 * active in boot.ini.default when the image has it (the bootini package rewrites boot.ini on
 * upgrades and re-applies only what that file sets). The edited boot.ini is checked against
 * U-Boot's limits now, so a file that cannot take the edit fails before anything is written.
 */
export async function bootIniSettingsOperations(image: ImageView, bootIni: string, settings: Record<string, string>): Promise<Operation[]> {
  const entries = Object.entries(settings);
  const edit = (text: string) => {
    const edited = entries.reduce((current, [name, value]) => setEnv(current, name, value), text);
    validateBootIni(edited);
    return edited;
  };
  edit((await image.readText('boot', bootIni)) ?? '');
  const operations: Operation[] = [
    { op: 'edit', on: 'boot', path: bootIni, what: entries.map(([name, value]) => `setenv ${name} "${value}"`).join(', '), edit },
  ];
  const persistent = await bootFile(image, 'boot.ini.default');
  if (persistent) {
    operations.push({
      op: 'edit',
      on: 'boot',
      path: persistent,
      what: `${entries.map(([name, value]) => `${name}=${value}`).join(', ')} kept across bootini package upgrades`,
      edit: (text) => entries.reduce((current, [name, value]) => setPersistentOverride(current, name, value), text),
    });
  }
  return operations;
}

/**
 * The config.ini stand-in for the C2's `setenv nographics "1"`. It is not an equivalent: the C2
 * script deletes the video nodes from the device tree (reference odroid-c2/boot.ini lines 183-186,
 * `if test "${nographics}" = "1"; then fdt rm /meson-fb; ...`), freeing ~300 MB of reserved
 * memory, and HardKernel's C4 boot.ini has no such switch. Its only display step of its own is
 * odroid-c4/boot.ini line 34, `if test "${display_autodetect}" = "true"; then hdmitx edid; fi`,
 * fed from config.ini's [generic] by lines 24-25 (`load ... config.ini && ini generic`): setting
 * it false stops U-Boot probing the monitor. The HDMI drivers still load. monitor_onoff, the other
 * candidate, only reaches the kernel command line (line 40) and these files do not say which value
 * switches the output off, so it is left as it is.
 */
export const nographicsForConfigIni: readonly IniSetting[] = [
  { section: 'generic', key: 'display_autodetect', value: 'false' },
];

export type BootConfigKind = 'c2-boot.ini' | 'config.ini';

/**
 * Which file carries the boot settings, from the names in the FAT's root. C4/N2 images have both
 * files and their boot.ini reads config.ini, so config.ini wins; a C2 has boot.ini alone.
 */
export function detectBootConfig(files: string[]): BootConfigKind | undefined {
  const names = new Set(files.map((f) => f.replace(/^\/+/, '').toLowerCase())); // FAT names ignore case
  if (names.has('config.ini')) return 'config.ini';
  if (names.has('boot.ini')) return 'c2-boot.ini';
  return undefined;
}
