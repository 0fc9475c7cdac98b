import type { BuildConfig } from '../config/schema.js';
import type { Operation } from '../engine/operations.js';
import type { Step } from '../engine/step.js';
import { renderTemplate } from '../engine/templates.js';
import { UserError } from '../errors.js';

const SHADOW = '/etc/shadow';
const SSHD_CONFIG = '/etc/ssh/sshd_config';
const SSH_DIR = '/root/.ssh';
const AUTHORIZED_KEYS = `${SSH_DIR}/authorized_keys`;
/** How the block is found again: its first line starts with this, its last line is END. */
const BEGIN_MARKER = '# BEGIN odroid-buildx-image';
const BEGIN = `${BEGIN_MARKER} (remote-access step, docs/host-kit.md): SSH takes keys only. A rebuild replaces this block.`;
const END = '# END odroid-buildx-image';
/** `*` is no hash at all, so no password opens it; unlike a `!` lock, sshd without PAM still takes root's keys. */
const NO_PASSWORD = '*';
/** Password fields that hold no password: `*`, `!`, `!!`, `!*` as useradd and passwd write them. */
const LOCKED = /^[!*]+$/;

const passwordField = (line: string) => line.split(':')[1];

/**
 * The accounts of /etc/shadow that a password opens: a hash (the stock root's and odroid's are
 * published), a `!`-prefixed hash that `passwd -u` would bring back, or an empty field, which logs
 * in without one.
 */
export function accountsWithPassword(shadow: string): string[] {
  return shadow
    .split('\n')
    .filter((line) => line.includes(':') && !LOCKED.test(passwordField(line)))
    .map((line) => line.split(':')[0]);
}

/**
 * Sets every password field that holds a password to `*`, and root's whatever it holds (a `!` would
 * shut out root's keys, see NO_PASSWORD), keeping the rest of each line.
 */
export function lockPasswords(shadow: string): string {
  const lines = shadow.split('\n');
  if (!lines.some((line) => line.startsWith('root:'))) throw new UserError(`${SHADOW} has no root entry; use HardKernel's Ubuntu image`);
  return lines
    .map((line) => {
      if (!line.includes(':') || (LOCKED.test(passwordField(line)) && !line.startsWith('root:'))) return line;
      const fields = line.split(':');
      fields[1] = NO_PASSWORD;
      return fields.join(':');
    })
    .join('\n');
}

const keywordOf = (line: string) => /^\s*([A-Za-z]+)(?:\s|=)/.exec(line)?.[1].toLowerCase();

/**
 * Puts `block` (BEGIN..END) first in sshd_config, replacing an earlier copy, and comments out the
 * file's own settings of the block's keywords up to the first Match (sshd keywords are
 * case-insensitive; lines inside Match blocks are conditional and left alone).
 */
export function setSshdBlock(config: string, block: string): string {
  const lines = config.split('\n');
  const begin = lines.findIndex((line) => line.startsWith(BEGIN_MARKER));
  const end = begin < 0 ? -1 : lines.findIndex((line, index) => index > begin && line === END);
  if (begin >= 0 && end >= 0) lines.splice(begin, end - begin + 1);
  const keywords = new Set(
    block
      .split('\n')
      .filter((line) => !line.startsWith('#'))
      .map(keywordOf)
      .filter(Boolean),
  );
  let inMatch = false;
  const edited = lines.map((line) => {
    const keyword = keywordOf(line);
    if (keyword === 'match') inMatch = true;
    return !inMatch && keyword !== undefined && keywords.has(keyword) ? `#${line}` : line;
  });
  return `${block.replace(/\n*$/, '\n')}${edited.join('\n')}`;
}

/** What the build summary says when the device will have no way in over the network. */
export function remoteLoginWarning(config: BuildConfig): string | undefined {
  if (config.ssh.authorizedKeys.length > 0) return undefined;
  return `no ssh.authorizedKeys: the device will have no remote login (every password is locked and SSH takes keys only); add your public key to the config and build again`;
}

/**
 * The stock image's published passwords must open nothing, on SSH or the serial console: every
 * account's password is locked, SSH takes public keys only, and root's keys are ssh.authorizedKeys.
 */
export const remoteAccess: Step = {
  name: 'remote-access',
  summary: 'every password locked, SSH with ssh.authorizedKeys only',
  async plan({ config, image }) {
    const render = (path: string, view: object) => renderTemplate(`remote-access${path}.mustache`, view);
    const shadow = (await image.lstat('rootfs', SHADOW))?.type === 'file' ? await image.readText('rootfs', SHADOW) : undefined;
    if (shadow === undefined) {
      throw new UserError(`the root file system has no ${SHADOW} to lock the passwords in; use HardKernel's Ubuntu image`);
    }
    const locked = accountsWithPassword(shadow);
    const operations: Operation[] = [
      {
        op: 'edit',
        on: 'rootfs',
        path: SHADOW,
        what: `passwords locked (${NO_PASSWORD}): ${locked.join(', ') || 'none had one'}`,
        edit: lockPasswords,
      },
      { op: 'mkdir', on: 'rootfs', path: SSH_DIR, mode: 0o700, uid: 0, gid: 0 },
      {
        op: 'write',
        on: 'rootfs',
        path: AUTHORIZED_KEYS,
        content: await render(AUTHORIZED_KEYS, { keys: config.ssh.authorizedKeys }),
        mode: 0o600,
        uid: 0,
        gid: 0,
      },
    ];
    // Without sshd there is nothing to harden; the locked passwords still close the console login.
    if ((await image.lstat('rootfs', SSHD_CONFIG))?.type === 'file') {
      const block = await render(SSHD_CONFIG, { begin: BEGIN, end: END });
      operations.push({
        op: 'edit',
        on: 'rootfs',
        path: SSHD_CONFIG,
        what: 'keys only, root by key',
        edit: (text) => setSshdBlock(text, block),
      });
    }
    return operations;
  },
  async applied(image) {
    const shadow = await image.readText('rootfs', SHADOW);
    return (
      shadow !== undefined &&
      /^root:\*:/m.test(shadow) &&
      accountsWithPassword(shadow).length === 0 &&
      ((await image.readText('rootfs', SSHD_CONFIG))?.includes(END) ?? false)
    );
  },
};
