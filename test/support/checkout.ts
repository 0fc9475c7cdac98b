/** Copies of this checkout, for what a user does with one: copy it, move it, install it anew. */
import { execFile as execFileCallback } from 'node:child_process';
import { mkdir, realpath, symlink } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { REPO } from './cli.js';

const execFile = promisify(execFileCallback);

/**
 * The checkout's files as git sees them (tracked ones, and new ones git does not ignore) copied
 * into `dest`: what a fresh clone of this working tree holds, without .cache/, out/, image/
 * downloads or node_modules. With `linkModules`, node_modules is a link to this checkout's.
 */
export async function copyCheckout(dest: string, options: { linkModules?: boolean } = {}): Promise<string> {
  await mkdir(dest, { recursive: true });
  await execFile(
    'bash',
    [
      '--norc',
      '-c',
      'git ls-files -z --cached --others --exclude-standard | tar --null --ignore-failed-read -T - -cf - | tar -xf - -C "$1"',
      'copy',
      dest,
    ],
    { cwd: REPO, maxBuffer: 16 << 20 },
  );
  if (options.linkModules) await symlink(await realpath(join(REPO, 'node_modules')), join(dest, 'node_modules'));
  return dest;
}
