/**
 * The boot files in the FAT's root, by role: which one carries the settings, where the kernel
 * command line is set, where the persistent overrides live. HardKernel's boards boot through
 * U-Boot's boot.ini (and config.ini on a C4/N2); a Raspberry Pi's firmware reads config.txt and
 * cmdline.txt. FAT ignores case, so every name is matched case-insensitively and kept as it is
 * spelled on the partition.
 */
import { UserError } from '../errors.js';
import { expandBootArgs } from './hush.js';

export type BootConfigKind = 'c2-boot.ini' | 'config.ini' | 'config.txt';

export interface BootFiles {
  kind: BootConfigKind;
  /** The file that carries the settings: boot.ini on a C2, config.ini on a C4/N2, config.txt on a Pi. */
  settings: string;
  /** boot.ini, which sets bootargs (a C4/N2's also reads config.ini); absent on a bare config.ini image. */
  bootIni?: string;
  /** boot.ini.default: the overrides the C2's bootini package re-applies when an upgrade rewrites boot.ini. */
  persistent?: string;
  /** cmdline.txt, the Pi's kernel command line. */
  cmdline?: string;
}

/**
 * Locates the boot files from the names in the FAT's root. C4/N2 images have both boot.ini and
 * config.ini and their boot.ini reads config.ini, so config.ini wins; a C2 has boot.ini alone; a
 * Pi has neither, and config.txt with cmdline.txt.
 */
export function locateBootFiles(names: string[]): BootFiles | undefined {
  const spelled = (name: string) => {
    const found = names.map((n) => n.replace(/^\/+/, '')).find((n) => n.toLowerCase() === name);
    return found === undefined ? undefined : `/${found}`;
  };
  const bootIni = spelled('boot.ini');
  const configIni = spelled('config.ini');
  const persistent = spelled('boot.ini.default');
  if (configIni) return { kind: 'config.ini', settings: configIni, bootIni, persistent };
  if (bootIni) return { kind: 'c2-boot.ini', settings: bootIni, bootIni, persistent };
  const configTxt = spelled('config.txt');
  const cmdline = spelled('cmdline.txt');
  if (configTxt && cmdline) return { kind: 'config.txt', settings: configTxt, cmdline };
  return undefined;
}

/**
 * The `root=UUID=` the kernel gets from boot.ini's bootargs, as U-Boot would expand them. A
 * script this parser cannot follow yields undefined: the caller then picks the root another way.
 */
export function rootUuidOf(bootIni: string): string | undefined {
  let args: string;
  try {
    args = expandBootArgs(bootIni);
  } catch (error) {
    if (error instanceof UserError) return undefined;
    throw error;
  }
  const uuid = args.split(' ').find((arg) => /^root=UUID=[0-9a-fA-F-]{36}$/.test(arg));
  return uuid?.slice('root=UUID='.length).toLowerCase();
}

/**
 * The root cmdline.txt names as `root=PARTUUID=<disk id>-<NN>` (how Pi OS boots): the MBR's disk
 * identifier (as `0x` and 8 hex digits) and the partition number.
 */
export function rootPartuuidOf(cmdline: string): { diskId: string; partition: number } | undefined {
  const arg = (cmdline.split(/\r?\n/, 1)[0] ?? '').split(/\s+/).find((a) => a.startsWith('root=PARTUUID='));
  const match = arg && /^root=PARTUUID=([0-9a-fA-F]{8})-([0-9a-fA-F]{2})$/.exec(arg);
  return match ? { diskId: `0x${match[1].toLowerCase()}`, partition: Number.parseInt(match[2], 16) } : undefined;
}
