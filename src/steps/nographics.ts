import {
  detectBootConfig,
  getEnv,
  getIniKey,
  nographicsForConfigIni,
  setEnv,
  setIniKey,
  setPersistentOverride,
  validateBootIni,
} from '../bootconfig.js';
import { UserError } from '../errors.js';
import type { Operation } from '../operations.js';
import { bootFile } from './common.js';
import type { ImageView, Step } from './step.js';

/** Sets the active nographics line; refuses a result the C2's U-Boot would not read. */
function enableNographics(bootIni: string): string {
  const edited = setEnv(bootIni, 'nographics', '1');
  validateBootIni(edited);
  return edited;
}

function applyConfigIniSettings(configIni: string): string {
  return nographicsForConfigIni.reduce((text, { section, key, value }) => setIniKey(text, section, key, value), configIni);
}

interface BootFiles {
  kind: 'c2-boot.ini' | 'config.ini';
  /** boot.ini (C2) or config.ini (C4/N2) */
  config: string;
  /** C2 only: the bootini package's persistence file, when the image has it */
  persistent?: string;
}

async function bootFiles(image: ImageView): Promise<BootFiles | undefined> {
  const kind = detectBootConfig(await image.readdir('boot', '/'));
  if (kind === undefined) return undefined;
  if (kind === 'config.ini') return { kind, config: (await bootFile(image, 'config.ini'))! };
  return { kind, config: (await bootFile(image, 'boot.ini'))!, persistent: await bootFile(image, 'boot.ini.default') };
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
    // Fail here, before anything is written, if boot.ini cannot take the edit.
    enableNographics((await image.readText('boot', files.config)) ?? '');
    const operations: Operation[] = [{ op: 'edit', on: 'boot', path: files.config, what: 'setenv nographics "1"', edit: enableNographics }];
    if (files.persistent) {
      const persistent = files.persistent;
      operations.push({
        op: 'edit',
        on: 'boot',
        path: persistent,
        what: 'nographics=1 kept across bootini package upgrades',
        edit: (text) => setPersistentOverride(text, 'nographics', '1'),
      });
    }
    return operations;
  },
  async applied(image) {
    const files = await bootFiles(image);
    if (!files) return false;
    const text = (await image.readText('boot', files.config)) ?? '';
    if (files.kind === 'c2-boot.ini') return getEnv(text, 'nographics') === '1';
    return nographicsForConfigIni.every(({ section, key, value }) => getIniKey(text, section, key) === value);
  },
};
