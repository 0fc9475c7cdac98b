/**
 * cmdline.txt: the Raspberry Pi firmware's kernel command line, ONE line (the firmware reads only
 * the first). Edits keep the other arguments, their order and the file's line ending.
 */
import { UserError } from '../errors.js';

/** The arguments of the first line. */
export function cmdlineArgs(text: string): string[] {
  return (text.split(/\r?\n/, 1)[0] ?? '').split(/[ \t]+/).filter(Boolean);
}

/** `init` for `init=/sbin/x`, `ro` for `ro`: what makes two arguments the same setting. */
export const argKey = (arg: string) => arg.split('=', 1)[0];

export interface KernelArgsEdit {
  /** Keys whose every argument goes (`rw`, `init`). */
  remove: string[];
  /** Arguments that replace the first one with the same key (later ones of that key go), or are added at the end. */
  set: string[];
}

/** The argument list with `edit` applied: removals first, then each `set` in order. */
export function editArgs(args: string[], edit: KernelArgsEdit): string[] {
  let result = args.filter((arg) => !edit.remove.includes(argKey(arg)));
  for (const arg of edit.set) {
    if (!/^\S+$/.test(arg)) throw new UserError(`a kernel argument must be one word without spaces: ${JSON.stringify(arg)}`);
    const key = argKey(arg);
    const at = result.findIndex((a) => argKey(a) === key);
    result = at < 0 ? [...result, arg] : [...result.slice(0, at), arg, ...result.slice(at + 1).filter((a) => argKey(a) !== key)];
  }
  return result;
}

/** cmdline.txt with `edit` applied, still one line; the rest of the file (a line ending) is kept. */
export function editCmdline(text: string, edit: KernelArgsEdit): string {
  const end = text.search(/\r?\n/);
  const rest = end < 0 ? '' : text.slice(end);
  if (rest.replace(/^\r?\n/, '').trim() !== '') {
    throw new UserError('cmdline.txt has more than one line; the firmware reads only the first: join it into one line');
  }
  return `${editArgs(cmdlineArgs(text), edit).join(' ')}${rest}`;
}
