/**
 * The device's SSH host keys, made once on the build host with ssh-keygen and kept in the
 * build's secrets directory, so every build of the same device presents the same keys and the
 * host's known_hosts entry stays valid. Nothing here knows the image.
 */
import { execFile as execFileCallback } from 'node:child_process';
import { chmod, mkdir, readFile, rename } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { UserError } from '../errors.js';
import { exists } from '../files.js';
import { withScratchDir } from '../output/pending-dir.js';
import { killPoint } from '../timing.js';

const execFile = promisify(execFileCallback);

/** The types OpenSSH 7.6 (Ubuntu 18.04) loads by default when sshd_config names no HostKey. */
export const HOST_KEY_TYPES = [
  { type: 'ed25519', args: [] },
  { type: 'ecdsa', args: ['-b', '256'] },
  { type: 'rsa', args: ['-b', '3072'] },
] as const;

export interface HostKey {
  type: string;
  /** ssh_host_<type>_key, as in /etc/ssh */
  name: string;
  privateKey: Buffer;
  publicKey: Buffer;
}

/** Where the host keys live in the build's secrets directory. */
export const hostKeysDir = (secrets: string) => join(secrets, 'ssh');

/** Creates the directory if needed and makes it private (0700) even if it existed. */
export async function privateDir(path: string): Promise<void> {
  await mkdir(path, { recursive: true, mode: 0o700 });
  await chmod(path, 0o700);
}

async function generate(dir: string, name: string, type: string, args: readonly string[], comment: string): Promise<void> {
  // Made aside and moved into place public key first: a build cut off half-way leaves at most a
  // public key without its private one, which the next build replaces, never the reverse.
  await withScratchDir(dir, async (scratch) => {
    const file = join(scratch, name);
    try {
      await execFile('ssh-keygen', ['-q', '-t', type, ...args, '-N', '', '-C', comment, '-f', file]);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') {
        throw new UserError("ssh-keygen not found; install openssh-client (it makes the device's SSH host keys)");
      }
      // ssh-keygen writes the key itself: a full disk is its failure, told in its last words.
      const said = String((error as { stderr?: string }).stderr ?? '')
        .trim()
        .split('\n')
        .pop();
      throw new UserError(
        `ssh-keygen could not make the ${type} host key${said ? `: ${said}` : ''}; check free space in ${dir} (or pass another --out), and that ssh-keygen (openssh-client) runs`,
      );
    }
    killPoint('ssh-keygen');
    await rename(`${file}.pub`, join(dir, `${name}.pub`));
    await rename(file, join(dir, name));
  });
}

/**
 * The host keys in `dir` (e.g. <out>/secrets/ssh), generating the missing ones with `comment`
 * (root@<hostname>). Existing keys are reused as they are, so a user may also put their own there.
 */
export async function hostKeys(dir: string, comment: string): Promise<HostKey[]> {
  await privateDir(dir);
  const keys: HostKey[] = [];
  for (const { type, args } of HOST_KEY_TYPES) {
    const name = `ssh_host_${type}_key`;
    const privatePath = join(dir, name);
    if (!(await exists(privatePath))) await generate(dir, name, type, args, comment);
    const publicPath = `${privatePath}.pub`;
    if (!(await exists(publicPath))) {
      throw new UserError(`${publicPath} is missing; restore it, or delete ${privatePath} to have a new key pair made`);
    }
    keys.push({ type, name, privateKey: await readFile(privatePath), publicKey: await readFile(publicPath) });
  }
  return keys;
}
