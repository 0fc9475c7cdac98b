/**
 * The boot configuration of an image, one model for every step and `inspect`: which file carries
 * the settings (boot.ini on a C2, config.ini on a C4/N2, config.txt on a Raspberry Pi, found
 * case-insensitively), which carries the kernel command line (boot.ini, or cmdline.txt), and the
 * operations that change them, from named edits (formats/boot-edits.ts). Every change to a C2's
 * boot.ini is mirrored into boot.ini.default when the image has it: the bootini package replaces
 * boot.ini on upgrades and re-applies only what that file sets, so a change made to boot.ini alone
 * would silently disappear. Every edit is checked now, so a file that cannot take it fails before
 * anything is written.
 */
import type { Operation } from '../engine/operations.js';
import type { ImageView } from '../engine/step.js';
import { UserError } from '../errors.js';
import {
  applyKernelArgsEdit,
  applySettingEdit,
  describeKernelArgsEdit,
  describeSettingEdit,
  type KernelArgsEdit,
  kernelArgsOf,
  type SettingEdit,
  settingEditHolds,
  settingValue,
} from '../formats/boot-edits.js';
import { type BootFiles, locateBootFiles } from '../formats/boot-files.js';
import { C2_BOOT_INI_HEADER, getEnv, validateBootIni } from '../formats/hush.js';
import { getIniKey, setPersistentOverride } from '../formats/ini.js';

export type { KernelArgsEdit, SettingEdit } from '../formats/boot-edits.js';
export type { BootConfigKind } from '../formats/boot-files.js';

export interface BootConfig extends BootFiles {
  /** The settings file's text. */
  text: string;
  /** boot.ini's text, when there is a boot.ini. */
  bootIniText?: string;
  /** boot.ini.default's text, when there is one. */
  persistentText?: string;
  /** cmdline.txt's text, on a Pi. */
  cmdlineText?: string;
}

/** The image's boot configuration; undefined when the boot partition has none this tool knows. */
export async function readBootConfig(image: ImageView): Promise<BootConfig | undefined> {
  const files = locateBootFiles(await image.readdir('boot', '/'));
  if (!files) return undefined;
  const read = async (path: string | undefined) => (path === undefined ? undefined : ((await image.readText('boot', path)) ?? ''));
  const bootIniText = await read(files.bootIni);
  const text = files.settings === files.bootIni ? (bootIniText ?? '') : ((await read(files.settings)) ?? '');
  return { ...files, text, bootIniText, persistentText: await read(files.persistent), cmdlineText: await read(files.cmdline) };
}

/** What the FAT's root holds, for messages about an image this tool does not know. */
export async function bootPartitionNames(image: ImageView): Promise<string> {
  return (await image.readdir('boot', '/')).join(', ') || 'nothing';
}

/** As readBootConfig, but a missing configuration is one line saying what the image has instead. */
export async function requireBootConfig(image: ImageView): Promise<BootConfig> {
  const config = await readBootConfig(image);
  if (config) return config;
  throw new UserError(
    `the boot partition has neither boot.ini nor config.ini (found: ${await bootPartitionNames(image)}), nor a Raspberry Pi's config.txt and cmdline.txt; use a HardKernel ODROID or Raspberry Pi OS image`,
  );
}

/** A setting's active value: `setenv` in a C2's boot.ini, `[generic]` in config.ini, [all] in config.txt. */
export function bootSetting(config: BootConfig, name: string): string | undefined {
  return settingValue(config.kind, config.text, name);
}

/** Whether the settings file already shows every edit. */
export function settingsHold(config: BootConfig, edits: readonly SettingEdit[]): boolean {
  return edits.every((edit) => settingEditHolds(config.kind, config.text, edit));
}

/** The file carrying the kernel command line, and its text: boot.ini, or cmdline.txt on a Pi. */
function kernelArgsFile(config: BootConfig): { path: string; text: string } | undefined {
  if (config.kind === 'config.txt') return { path: config.cmdline!, text: config.cmdlineText ?? '' };
  return config.bootIni === undefined ? undefined : { path: config.bootIni, text: config.bootIniText ?? '' };
}

/** The kernel command line the boot passes: boot.ini's bootargs with every ${var} expanded, or cmdline.txt. */
export function kernelArgs(config: BootConfig): string[] {
  const file = kernelArgsFile(config);
  return file === undefined ? [] : kernelArgsOf(config.kind, file.text);
}

/** Where the kernel command line is set, as `boot:/path`. */
export function kernelArgsSource(config: BootConfig | undefined): string {
  return `boot:${(config && kernelArgsFile(config)?.path) ?? '/boot.ini'}`;
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
 * Operations that make each edit of the settings file, in order: `setenv name "value"` in a C2's
 * boot.ini (checked against U-Boot's limits), `name=value` in config.ini's [generic], lines
 * under config.txt's final [all].
 */
export function settingEditsOperations(config: BootConfig, edits: readonly SettingEdit[]): Operation[] {
  if (edits.length === 0) return [];
  const c2 = config.kind === 'c2-boot.ini';
  const edit = (text: string) => {
    const edited = edits.reduce((current, e) => applySettingEdit(config.kind, current, e), text);
    if (c2) validateBootIni(edited);
    return edited;
  };
  edit(config.text);
  const described = edits.map((e) => describeSettingEdit(config.kind, e));
  const what = config.kind === 'config.ini' ? described.join(', ').replace(/ in \[generic\](?=,)/g, '') : described.join(', ');
  const persistent = Object.fromEntries(edits.flatMap((e) => (e.kind === 'set' ? [[e.name, e.value]] : [])));
  return [
    { op: 'edit', on: 'boot', path: config.settings, what, edit },
    ...(c2
      ? persistenceOperations(
          config,
          persistent,
          Object.entries(persistent)
            .map(([n, v]) => `${n}=${v}`)
            .join(', '),
        )
      : []),
  ];
}

/** settingEditsOperations for plain name=value settings. */
export function settingsOperations(config: BootConfig, settings: Record<string, string>): Operation[] {
  return settingEditsOperations(
    config,
    Object.entries(settings).map(([name, value]) => ({ kind: 'set', name, value })),
  );
}

/**
 * Operations that change the kernel command line: boot.ini's bootargs (on a C2 boot.ini.default
 * gets the whole new bootargs value too), or cmdline.txt's one line.
 */
export function kernelArgsOperations(config: BootConfig, change: KernelArgsEdit): Operation[] {
  const file = kernelArgsFile(config);
  if (file === undefined) {
    throw new UserError(
      `the boot partition has no boot.ini to carry the kernel arguments (it has ${config.settings.slice(1)}); use a HardKernel ODROID image`,
    );
  }
  const c2 = config.kind !== 'config.txt' && isC2BootIni(file.text);
  const edit = (text: string) => {
    const edited = applyKernelArgsEdit(config.kind, text, change);
    if (c2) validateBootIni(edited);
    return edited;
  };
  const edited = edit(file.text);
  const name = config.kind === 'config.txt' ? 'cmdline' : 'bootargs';
  const bootargs = config.kind === 'config.txt' ? undefined : getEnv(edited, 'bootargs');
  return [
    { op: 'edit', on: 'boot', path: file.path, what: `${name}: ${describeKernelArgsEdit(change)}`, edit },
    ...(bootargs === undefined ? [] : persistenceOperations(config, { bootargs }, 'bootargs')),
  ];
}
