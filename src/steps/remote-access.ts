import { posix } from 'node:path';
import type { BuildConfig } from '../config/schema.js';
import type { Operation } from '../engine/operations.js';
import type { ImageView, Step } from '../engine/step.js';
import { renderTemplate } from '../engine/templates.js';
import { UserError } from '../errors.js';
import { realFile, realPath } from '../facts/root-paths.js';

const SHADOW = '/etc/shadow';
const PASSWD = '/etc/passwd';
const SSHD_CONFIG = '/etc/ssh/sshd_config';
const SSH_DIR = '/root/.ssh';
const AUTHORIZED_KEYS = `${SSH_DIR}/authorized_keys`;
/** How the block is found again: its first line starts with this, its last line is END. */
const BEGIN_MARKER = '# BEGIN odroid-buildx-image';
const BEGIN = `${BEGIN_MARKER} (remote-access step, docs/host-kit.md): SSH takes keys only. A rebuild replaces this block.`;
const END = '# END odroid-buildx-image';
/** `*` is no hash at all, so no password opens root; unlike a `!` lock, sshd without PAM still takes root's keys. */
const NO_PASSWORD = '*';
/**
 * Every other account is locked as `passwd -l` locks one: a `!` before the field. PAM's pam_unix
 * matches no password against it, and sshd, without PAM, refuses a `!` account every method, keys
 * included (a bare `*` it lets in by key). `!*` drops the published stock hash too.
 */
const LOCKED_ACCOUNT = '!*';
/** Password fields that hold no password: `*`, `!`, `!!`, `!*` as useradd and passwd write them. */
const NO_HASH = /^[!*]+$/;
/** Key files sshd reads for an account by default; the block below narrows it to the first. */
const KEY_FILES = ['.ssh/authorized_keys', '.ssh/authorized_keys2'];

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
  if (!lines.some((line) => line.startsWith('root:'))) throw new UserError(`${SHADOW} has no root entry; use HardKernel's Ubuntu image`);
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

/** The home directories of /etc/passwd's accounts, root's among them. */
function homesOf(passwd: string): string[] {
  const homes = passwd
    .split('\n')
    .map((line) => line.split(':')[5])
    .filter((home): home is string => Boolean(home?.startsWith('/')));
  return [...new Set(homes)];
}

/**
 * Every key file in the stock root that sshd would read, root's included: a stock image may carry
 * keys of its own (someone's, in a published image) that would outlive the locked passwords.
 */
async function stockKeyFiles(image: ImageView): Promise<string[]> {
  const passwd = await image.readText('rootfs', await realFile(image, PASSWD));
  const found: string[] = [];
  for (const home of homesOf(passwd ?? '')) {
    for (const file of KEY_FILES) {
      const path = await realPath(image, posix.join(home, file));
      // Root's own file is rewritten with ssh.authorizedKeys below.
      if (path !== AUTHORIZED_KEYS && (await image.lstat('rootfs', path)) !== undefined) found.push(path);
    }
  }
  return found;
}

const keywordOf = (line: string) => /^\s*([A-Za-z]+)(?:\s|=)/.exec(line)?.[1].toLowerCase();

/**
 * Puts `block` (BEGIN..END) first in sshd_config, replacing an earlier copy, and comments out the
 * file's own settings of the block's keywords, inside Match blocks too (sshd keywords are
 * case-insensitive): a Match line's settings win for the users it matches, so a stock
 * `Match User odroid` with its own key file or passwords would open a way around the block.
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
  const edited = lines.map((line) => {
    const keyword = keywordOf(line);
    return keyword !== undefined && keywords.has(keyword) ? `#${line}` : line;
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
    const shadowPath = await realFile(image, SHADOW);
    const shadow = (await image.lstat('rootfs', shadowPath))?.type === 'file' ? await image.readText('rootfs', shadowPath) : undefined;
    if (shadow === undefined) {
      throw new UserError(`the root file system has no ${SHADOW} to lock the passwords in; use HardKernel's Ubuntu image`);
    }
    const locked = accountsWithPassword(shadow);
    const operations: Operation[] = [
      {
        op: 'edit',
        on: 'rootfs',
        path: shadowPath,
        what: `root's password removed (${NO_PASSWORD}), every other account locked (${LOCKED_ACCOUNT}); had one: ${locked.join(', ') || 'none'}`,
        edit: lockPasswords,
      },
      ...(await stockKeyFiles(image)).map((path): Operation => ({ op: 'remove', on: 'rootfs', path })),
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
    const sshdConfig = await realFile(image, SSHD_CONFIG);
    if ((await image.lstat('rootfs', sshdConfig))?.type === 'file') {
      const block = await render(SSHD_CONFIG, { begin: BEGIN, end: END });
      operations.push({
        op: 'edit',
        on: 'rootfs',
        path: sshdConfig,
        what: `keys only, root by key${sshdConfig === SSHD_CONFIG ? '' : ` (${SSHD_CONFIG} links to it)`}`,
        edit: (text) => setSshdBlock(text, block),
      });
    }
    return operations;
  },
  async applied(image) {
    const shadow = await image.readText('rootfs', await realFile(image, SHADOW));
    return (
      shadow !== undefined &&
      /^root:\*:/m.test(shadow) &&
      accountsWithPassword(shadow).length === 0 &&
      ((await image.readText('rootfs', await realFile(image, SSHD_CONFIG)))?.includes(END) ?? false)
    );
  },
};
