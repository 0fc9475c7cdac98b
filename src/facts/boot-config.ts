/**
 * The boot configuration of an image, one model for every step and `inspect`: which file carries
 * the settings (boot.ini on a C2, config.ini on a C4/N2, found case-insensitively), its settings
 * and kernel command line, and the operations that change them. Every change to a C2's boot.ini
 * is mirrored into boot.ini.default when the image has it: the bootini package replaces boot.ini
 * on upgrades and re-applies only what that file sets, so a change made to boot.ini alone would
 * silently disappear. Every edit is checked now, so a file that cannot take it fails before
 * anything is written.
 */
import type { Operation } from '../engine/operations.js';
import type { ImageView } from '../engine/step.js';
import { UserError } from '../errors.js';
import { type BootFiles, locateBootFiles } from '../formats/boot-files.js';
import { C2_BOOT_INI_HEADER, expandBootArgs, getEnv, setEnv, validateBootIni } from '../formats/hush.js';
import { getIniKey, setIniKey, setPersistentOverride } from '../formats/ini.js';

export type { BootConfigKind } from '../formats/boot-files.js';

/** config.ini's settings live in its [generic] section, which HardKernel's boot.ini imports (`ini generic`). */
const CONFIG_INI_SECTION = 'generic';

export interface BootConfig extends BootFiles {
  /** The settings file's text. */
  text: string;
  /** boot.ini's text, when there is a boot.ini. */
  bootIniText?: string;
  /** boot.ini.default's text, when there is one. */
  persistentText?: string;
}

/** The image's boot configuration; undefined when the boot partition has neither boot.ini nor config.ini. */
export async function readBootConfig(image: ImageView): Promise<BootConfig | undefined> {
  const files = locateBootFiles(await image.readdir('boot', '/'));
  if (!files) return undefined;
  const bootIniText = files.bootIni === undefined ? undefined : ((await image.readText('boot', files.bootIni)) ?? '');
  const text = files.settings === files.bootIni ? (bootIniText ?? '') : ((await image.readText('boot', files.settings)) ?? '');
  const persistentText = files.persistent === undefined ? undefined : ((await image.readText('boot', files.persistent)) ?? '');
  return { ...files, text, bootIniText, persistentText };
}

/** As readBootConfig, but a missing configuration is one line saying what the image has instead. */
export async function requireBootConfig(image: ImageView): Promise<BootConfig> {
  const config = await readBootConfig(image);
  if (config) return config;
  const found = (await image.readdir('boot', '/')).join(', ') || 'nothing';
  throw new UserError(`the boot partition has neither boot.ini nor config.ini (found: ${found}); use a HardKernel ODROID image`);
}

/** A setting's active value: `setenv` in a C2's boot.ini, `[generic]` in config.ini. */
export function bootSetting(config: BootConfig, name: string): string | undefined {
  return config.kind === 'c2-boot.ini' ? getEnv(config.text, name) : getIniKey(config.text, CONFIG_INI_SECTION, name);
}

/** The kernel command line U-Boot would pass: boot.ini's bootargs with every ${var} expanded. */
export function kernelArgs(config: BootConfig): string[] {
  return config.bootIniText === undefined ? [] : expandBootArgs(config.bootIniText).split(' ').filter(Boolean);
}

/** A persistent override of boot.ini.default, as a C2 with that file needs for every change. */
export function persistentValue(config: BootConfig, name: string): string | undefined {
  return config.persistentText === undefined ? undefined : getIniKey(config.persistentText, 'general', name);
}

const isC2BootIni = (text: string) => text.split('\n', 1)[0].replace(/\r$/, '') === C2_BOOT_INI_HEADER;

/** The edit of boot.ini.default that keeps `settings` across bootini upgrades, when the image has that file. */
function persistenceOperations(config: BootConfig, settings: Record<string, string>, what: string): Operation[] {
  if (config.persistent === undefined || config.kind !== 'c2-boot.ini' || !isC2BootIni(config.text)) return [];
  const entries = Object.entries(settings);
  return [
    {
      op: 'edit',
      on: 'boot',
      path: config.persistent,
      what: `${what} kept across bootini package upgrades`,
      edit: (text) => entries.reduce((current, [name, value]) => setPersistentOverride(current, name, value), text),
    },
  ];
}

/**
 * Operations that make each setting active: `setenv name "value"` in a C2's boot.ini (checked
 * against U-Boot's limits), `name=value` in config.ini's [generic].
 */
export function settingsOperations(config: BootConfig, settings: Record<string, string>): Operation[] {
  const entries = Object.entries(settings);
  if (config.kind === 'config.ini') {
    const edit = (text: string) => entries.reduce((current, [name, value]) => setIniKey(current, CONFIG_INI_SECTION, name, value), text);
    edit(config.text);
    const what = `${entries.map(([name, value]) => `${name}=${value}`).join(', ')} in [${CONFIG_INI_SECTION}]`;
    return [{ op: 'edit', on: 'boot', path: config.settings, what, edit }];
  }
  const edit = (text: string) => {
    const edited = entries.reduce((current, [name, value]) => setEnv(current, name, value), text);
    validateBootIni(edited);
    return edited;
  };
  edit(config.text);
  return [
    { op: 'edit', on: 'boot', path: config.settings, what: entries.map(([name, value]) => `setenv ${name} "${value}"`).join(', '), edit },
    ...persistenceOperations(config, settings, entries.map(([name, value]) => `${name}=${value}`).join(', ')),
  ];
}

/**
 * Operations that change the kernel command line: `edit` rewrites boot.ini (e.g. with addBootArg),
 * and on a C2 boot.ini.default gets the whole new bootargs value.
 */
export function kernelArgsOperations(config: BootConfig, what: string, edit: (bootIni: string) => string): Operation[] {
  if (config.bootIni === undefined || config.bootIniText === undefined) {
    throw new UserError(
      `the boot partition has no boot.ini to carry the kernel arguments (it has ${config.settings.slice(1)}); use a HardKernel ODROID image`,
    );
  }
  const c2 = isC2BootIni(config.bootIniText);
  const checkedEdit = (text: string) => {
    const edited = edit(text);
    if (c2) validateBootIni(edited);
    return edited;
  };
  const bootargs = getEnv(checkedEdit(config.bootIniText), 'bootargs');
  return [
    { op: 'edit', on: 'boot', path: config.bootIni, what, edit: checkedEdit },
    ...(bootargs === undefined ? [] : persistenceOperations(config, { bootargs }, 'bootargs')),
  ];
}
