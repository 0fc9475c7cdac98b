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
import { type KernelArgsEdit, kernelArgsOf, type SettingEdit, settingEditHolds, settingValue } from '../formats/boot-edits.js';
import { type BootFiles, locateBootFiles } from '../formats/boot-files.js';
import { getEnv, isC2BootIni } from '../formats/hush.js';
import { getIniKey } from '../formats/ini.js';
import { applyTextChange, type TextChange } from '../formats/text-changes.js';

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

/** The edit of boot.ini.default that keeps `values` across bootini upgrades, when the image has that file. */
function persistenceOperations(config: BootConfig, values: Record<string, string>): Operation[] {
  if (config.persistent === undefined || config.kind !== 'c2-boot.ini' || !isC2BootIni(config.text)) return [];
  return [{ op: 'edit', on: 'boot', path: config.persistent, change: { change: 'persistent-overrides', values } }];
}

/**
 * Operations that make each edit of the settings file, in order: `setenv name "value"` in a C2's
 * boot.ini (checked against U-Boot's limits), `name=value` in config.ini's [generic], lines
 * under config.txt's final [all].
 */
export function settingEditsOperations(config: BootConfig, edits: readonly SettingEdit[]): Operation[] {
  if (edits.length === 0) return [];
  const change: TextChange = { change: 'boot-settings', format: config.kind, edits: [...edits] };
  applyTextChange(config.text, change); // fails here, before anything is written, if the file cannot take it
  const persistent = Object.fromEntries(edits.flatMap((e) => (e.kind === 'set' ? [[e.name, e.value]] : [])));
  return [
    { op: 'edit', on: 'boot', path: config.settings, change },
    ...(config.kind === 'c2-boot.ini' ? persistenceOperations(config, persistent) : []),
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
  const textChange: TextChange = { change: 'kernel-args', format: config.kind, edit: change };
  const edited = applyTextChange(file.text, textChange);
  const bootargs = config.kind === 'config.txt' ? undefined : getEnv(edited, 'bootargs');
  return [
    { op: 'edit', on: 'boot', path: file.path, change: textChange },
    ...(bootargs === undefined ? [] : persistenceOperations(config, { bootargs })),
  ];
}
