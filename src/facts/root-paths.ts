/**
 * Paths in the root file system as the running system resolves them. The image view never follows
 * symlinks, and on merged-/usr images /sbin, /bin and /lib are links into /usr: every probe of a
 * system path goes through here instead of listing both spellings.
 */
import { posix } from 'node:path';
import { MAX_LINKS, resolveDir, resolveParent } from '../engine/real-paths.js';
import type { ImageView } from '../engine/step.js';
import { UserError } from '../errors.js';

const rootfsLinks = (image: ImageView) => (path: string) => image.readlink('rootfs', path);

/** `dir` with every symlink in it resolved, relative and absolute targets alike. */
export function realDir(image: ImageView, dir: string): Promise<string> {
  return resolveDir(rootfsLinks(image), dir);
}

/** Where a file at `path` really is, or would be written: its directory resolved, its own name kept. */
export async function realPath(image: ImageView, path: string): Promise<string> {
  return resolveParent(rootfsLinks(image), path);
}

/** The directories a root shell's PATH searches for system programs. */
const PROGRAM_DIRS = ['/usr/local/sbin', '/usr/local/bin', '/usr/sbin', '/usr/bin', '/sbin', '/bin'];

/** Where the image has the program `name` (a file or a link to one), if anywhere on root's PATH. */
export async function findProgram(image: ImageView, name: string): Promise<string | undefined> {
  for (const dir of PROGRAM_DIRS) {
    const path = await realPath(image, `${dir}/${name}`);
    const stat = await image.lstat('rootfs', path);
    if (stat?.type === 'file' || stat?.type === 'symlink') return path;
  }
  return undefined;
}

/**
 * Where the file at `path` really is: its directories and then the file itself followed through
 * symlinks, as the running system would open it (a stock /etc/ssh/sshd_config or /etc/shadow may be
 * a link). A loop is named in one line; a dangling link yields its target, which does not exist.
 */
export async function realFile(image: ImageView, path: string): Promise<string> {
  let resolved = await realPath(image, path);
  for (let links = 0; ; links++) {
    const target = await image.readlink('rootfs', resolved);
    if (target === undefined) return resolved;
    if (links >= MAX_LINKS) throw new UserError(`${path} in the root file system is a symlink loop; fix or remove it in the stock image`);
    resolved = await realPath(image, target.startsWith('/') ? target : posix.join(posix.dirname(resolved), target));
  }
}
