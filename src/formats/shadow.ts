/** /etc/shadow, as text: which accounts a password opens, and locking them. */
import { UserError } from '../errors.js';

/** `*` is no hash at all, so no password opens root; unlike a `!` lock, sshd without PAM still takes root's keys. */
export const NO_PASSWORD = '*';
/**
 * Every other account is locked as `passwd -l` locks one: a `!` before the field. PAM's pam_unix
 * matches no password against it, and sshd, without PAM, refuses a `!` account every method, keys
 * included (a bare `*` it lets in by key). `!*` drops the published stock hash too.
 */
export const LOCKED_ACCOUNT = '!*';
/** Password fields that hold no password: `*`, `!`, `!!`, `!*` as useradd and passwd write them. */
const NO_HASH = /^[!*]+$/;

const passwordField = (line: string) => line.split(':')[1];

/**
 * The accounts of /etc/shadow that a password opens: a hash (the stock root's and odroid's are
 * published), a `!`-prefixed hash that `passwd -u` would bring back, or an empty field, which logs
 * in without one.
 */
export function accountsWithPassword(shadow: string): string[] {
  return shadow
    .split('\n')
    .filter((line) => line.includes(':') && !NO_HASH.test(passwordField(line)))
    .map((line) => line.split(':')[0]);
}

/**
 * Sets root's password field to `*` (a `!` would shut out root's keys, see NO_PASSWORD) and locks
 * every other account with `!*` unless it is `!`-locked already, keeping the rest of each line.
 */
export function lockPasswords(shadow: string): string {
  const lines = shadow.split('\n');
  if (!lines.some((line) => line.startsWith('root:'))) throw new UserError(`/etc/shadow has no root entry; use HardKernel's Ubuntu image`);
  return lines
    .map((line) => {
      if (!line.includes(':')) return line;
      const fields = line.split(':');
      if (fields[0] === 'root') fields[1] = NO_PASSWORD;
      else if (!fields[1].startsWith('!')) fields[1] = LOCKED_ACCOUNT;
      return fields.join(':');
    })
    .join('\n');
}
