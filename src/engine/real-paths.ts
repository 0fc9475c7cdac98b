/**
 * Directories inside a partition as the running system resolves them: every symlink on the way
 * followed, absolute targets from the partition's root. A stock root may be merged-/usr shaped or
 * have /etc or /usr/local/bin as links; the applier and the facts both resolve through here.
 */
import { posix } from 'node:path';
import { UserError } from '../errors.js';

/** More links than this on one path is a loop (the kernel's own limit is 40). */
export const MAX_LINKS = 40;

/** Where a symlink at `path` points; undefined when the path is no symlink. */
export type ReadLink = (path: string) => Promise<string | undefined>;

/** `dir` with every symlink in it resolved, relative and absolute targets alike. */
export async function resolveDir(readlink: ReadLink, dir: string): Promise<string> {
  const pending = dir.split('/').filter(Boolean);
  let resolved = '/';
  let links = 0;
  while (pending.length > 0) {
    const part = pending.shift() as string;
    if (part === '.') continue;
    if (part === '..') {
      resolved = posix.dirname(resolved);
      continue;
    }
    const next = posix.join(resolved, part);
    const target = await readlink(next);
    if (target === undefined) {
      resolved = next;
      continue;
    }
    if (++links > MAX_LINKS)
      throw new UserError(`${dir} in the root file system leads through a symlink loop; fix or remove the link in the stock image`);
    pending.unshift(...target.split('/').filter(Boolean));
    if (target.startsWith('/')) resolved = '/';
  }
  return resolved;
}

/** `path` with its directories resolved and its own name kept: operations act on the name itself. */
export async function resolveParent(readlink: ReadLink, path: string): Promise<string> {
  return posix.join(await resolveDir(readlink, posix.dirname(path)), posix.basename(path));
}
