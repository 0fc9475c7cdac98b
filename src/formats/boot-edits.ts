/**
 * The edits a build makes to a boot configuration, as named data (a plan can print and compare
 * them), and how each boot-file format performs them: U-Boot's hush for a C2's boot.ini, INI for
 * a C4/N2's config.ini, config.txt and cmdline.txt for a Raspberry Pi.
 */
import type { BootConfigKind } from './boot-files.js';
import { cmdlineArgs, editCmdline, type KernelArgsEdit } from './cmdline.js';
import {
  addConfigTxtLine,
  commentOutConfigTxtLine,
  getConfigTxtKey,
  hasConfigTxtLine,
  setConfigTxtKey,
  unsetConfigTxtKey,
} from './config-txt.js';
import { addBootArg, expandBootArgs, getEnv, removeBootArg, setEnv } from './hush.js';
import { getIniKey, setIniKey } from './ini.js';

export type { KernelArgsEdit } from './cmdline.js';

export type SettingEdit =
  /** A setting's value: `setenv` (boot.ini), a [generic] key (config.ini), a key under [all] (config.txt). */
  | { kind: 'set'; name: string; value: string }
  /** config.txt: the key back to the firmware's default (no line of it under [all]). */
  | { kind: 'unset'; name: string }
  /** config.txt: a line for every board that adds up rather than replaces (dtoverlay). */
  | { kind: 'add-line'; line: string }
  /** config.txt: an unconditional line commented out, with why on the line above. */
  | { kind: 'comment-out'; line: string; why: string };

/** config.ini's settings live in its [generic] section, which HardKernel's boot.ini imports (`ini generic`). */
export const CONFIG_INI_SECTION = 'generic';

/** One line per edit, for the plan. */
export function describeSettingEdit(kind: BootConfigKind, edit: SettingEdit): string {
  switch (edit.kind) {
    case 'set':
      if (kind === 'c2-boot.ini') return `setenv ${edit.name} "${edit.value}"`;
      return `${edit.name}=${edit.value} in [${kind === 'config.ini' ? CONFIG_INI_SECTION : 'all'}]`;
    case 'unset':
      return `no ${edit.name} in [all] (the firmware's default)`;
    case 'add-line':
      return `${edit.line} in [all]`;
    case 'comment-out':
      return `#${edit.line}`;
  }
}

function unsupported(kind: BootConfigKind, edit: SettingEdit): never {
  throw new Error(`a ${kind} boot configuration has no "${edit.kind}" edit (${JSON.stringify(edit)})`);
}

/** The settings file with one edit made. */
export function applySettingEdit(kind: BootConfigKind, text: string, edit: SettingEdit): string {
  if (kind === 'config.txt') {
    switch (edit.kind) {
      case 'set':
        return setConfigTxtKey(text, edit.name, edit.value);
      case 'unset':
        return unsetConfigTxtKey(text, edit.name);
      case 'add-line':
        return addConfigTxtLine(text, edit.line);
      case 'comment-out':
        return commentOutConfigTxtLine(text, edit.line, edit.why);
    }
  }
  if (edit.kind !== 'set') return unsupported(kind, edit);
  return kind === 'c2-boot.ini' ? setEnv(text, edit.name, edit.value) : setIniKey(text, CONFIG_INI_SECTION, edit.name, edit.value);
}

/** A setting's active value: `setenv` in a C2's boot.ini, `[generic]` in config.ini, [all] in config.txt. */
export function settingValue(kind: BootConfigKind, text: string, name: string): string | undefined {
  if (kind === 'c2-boot.ini') return getEnv(text, name);
  return kind === 'config.ini' ? getIniKey(text, CONFIG_INI_SECTION, name) : getConfigTxtKey(text, name);
}

/** Whether the file already shows the edit. */
export function settingEditHolds(kind: BootConfigKind, text: string, edit: SettingEdit): boolean {
  switch (edit.kind) {
    case 'set':
      return settingValue(kind, text, edit.name) === edit.value;
    case 'unset':
      return getIniKey(text, 'all', edit.name) === undefined;
    case 'add-line':
      return hasConfigTxtLine(text, edit.line);
    case 'comment-out':
      return !hasConfigTxtLine(text, edit.line);
  }
}

/** The file that carries the kernel command line (boot.ini's bootargs, or cmdline.txt) with the edit made. */
export function applyKernelArgsEdit(kind: BootConfigKind, text: string, edit: KernelArgsEdit): string {
  if (kind === 'config.txt') return editCmdline(text, edit);
  return edit.set.reduce(addBootArg, edit.remove.reduce(removeBootArg, text));
}

/** The kernel command line the file gives: boot.ini's bootargs with every ${var} expanded, or cmdline.txt's line. */
export function kernelArgsOf(kind: BootConfigKind, text: string): string[] {
  return kind === 'config.txt' ? cmdlineArgs(text) : expandBootArgs(text).split(' ').filter(Boolean);
}

export function describeKernelArgsEdit(edit: KernelArgsEdit): string {
  return `${edit.set.join(' ')}${edit.remove.length > 0 ? ` (without ${edit.remove.join(', ')})` : ''}`;
}
