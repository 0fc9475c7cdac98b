/** Small helpers the text formats share. */
import { UserError } from '../errors.js';

/** A setting name every format here accepts: letters, digits, `_`, `.` and `-`. */
export function checkSettingName(name: string): void {
  if (!/^[A-Za-z0-9_.-]+$/.test(name)) throw new UserError(`${JSON.stringify(name)} is not a valid setting name`);
}

export const escapeRegExp = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

/** The line ending a file already uses, for lines added to it. */
export const fileEol = (text: string) => (/\r\n/.test(text) ? '\r\n' : '\n');
