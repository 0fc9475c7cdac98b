import { posix } from 'node:path';
import type { BuildConfig } from '../config/schema.js';
import type { Operation } from '../engine/operations.js';
import type { ImageView, Step } from '../engine/step.js';
import { renderTemplate } from '../engine/templates.js';
import { UserError } from '../errors.js';
import { realFile, realPath } from '../facts/root-paths.js';
import { accountsWithPassword } from '../formats/shadow.js';
import { SSHD_BLOCK_BEGIN, SSHD_BLOCK_END } from '../formats/sshd-config.js';

const SHADOW = '/etc/shadow';
const PASSWD = '/etc/passwd';
const SSHD_CONFIG = '/etc/ssh/sshd_config';
const SSH_DIR = '/root/.ssh';
const AUTHORIZED_KEYS = `${SSH_DIR}/authorized_keys`;
/** Key files sshd reads for an account by default; the block below narrows it to the first. */
const KEY_FILES = ['.ssh/authorized_keys', '.ssh/authorized_keys2'];

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
        change: { change: 'shadow-lock', hadPassword: locked },
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
      const block = await render(SSHD_CONFIG, { begin: SSHD_BLOCK_BEGIN, end: SSHD_BLOCK_END });
      operations.push({
        op: 'edit',
        on: 'rootfs',
        path: sshdConfig,
        change: { change: 'sshd-block', block },
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
      ((await image.readText('rootfs', await realFile(image, SSHD_CONFIG)))?.includes(SSHD_BLOCK_END) ?? false)
    );
  },
};
