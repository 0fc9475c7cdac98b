import { detectBootConfig, nographicsForConfigIni } from '../facts/boot-config.js';
import { getEnv } from '../formats/hush.js';
import { getIniKey, setIniKey } from '../formats/ini.js';
import { UserError } from '../errors.js';
import { bootFile, bootIniSettingsOperations } from '../facts/boot-config.js';
import type { ImageView, Step } from '../engine/step.js';

function applyConfigIniSettings(configIni: string): string {
  return nographicsForConfigIni.reduce((text, { section, key, value }) => setIniKey(text, section, key, value), configIni);
}

interface BootFiles {
  kind: 'c2-boot.ini' | 'config.ini';
  /** boot.ini (C2) or config.ini (C4/N2) */
  config: string;
}

async function bootFiles(image: ImageView): Promise<BootFiles | undefined> {
  const kind = detectBootConfig(await image.readdir('boot', '/'));
  if (kind === undefined) return undefined;
  return { kind, config: (await bootFile(image, kind === 'config.ini' ? 'config.ini' : 'boot.ini'))! };
}

/**
 * Server mode: on the C2 boot.ini removes the video nodes from the device tree, which frees
 * the memory reserved for them and keeps the display hardware off (less power over USB).
 */
export const nographics: Step = {
  name: 'nographics',
  summary: 'boot without the video subsystem (setenv nographics "1")',
  async plan({ image }) {
    const files = await bootFiles(image);
    if (!files) {
      const found = (await image.readdir('boot', '/')).join(', ') || 'nothing';
      throw new UserError(`the boot partition has neither boot.ini nor config.ini (found: ${found}); use a HardKernel ODROID image`);
    }
    if (files.kind === 'config.ini') {
      return [{ op: 'edit', on: 'boot', path: files.config, what: 'display_autodetect=false in [generic]', edit: applyConfigIniSettings }];
    }
    return bootIniSettingsOperations(image, files.config, { nographics: '1' });
  },
  async applied(image) {
    const files = await bootFiles(image);
    if (!files) return false;
    const text = (await image.readText('boot', files.config)) ?? '';
    if (files.kind === 'c2-boot.ini') return getEnv(text, 'nographics') === '1';
    return nographicsForConfigIni.every(({ section, key, value }) => getIniKey(text, section, key) === value);
  },
};
