/**
 * A directory written in full beside its final place and swapped in only when complete, so a
 * failed build leaves the previous one (or none), never half of a new one.
 */
import { chmod, mkdtemp, rename, rm } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';

export interface PendingDir {
  /** Where to write now: a hidden temp directory beside the final one. */
  path: string;
  /** Replaces the final directory (and everything in it) with this one. */
  commit(): Promise<void>;
  discard(): Promise<void>;
}

export async function pendingDir(finalPath: string, mode: number): Promise<PendingDir> {
  const parent = dirname(finalPath);
  const path = await mkdtemp(join(parent, `.${basename(finalPath)}.new-`));
  await chmod(path, mode);
  return {
    path,
    commit: () => replaceDir(path, finalPath),
    async discard() {
      await rm(path, { recursive: true, force: true });
    },
  };
}

/** Puts directory `from` at `to`, replacing whatever directory is there (or none). */
export async function replaceDir(from: string, to: string): Promise<void> {
  // rename() cannot replace a non-empty directory: the old one moves aside first, so
  // `to` is missing for an instant but never holds a mix of old and new.
  const aside = await mkdtemp(join(dirname(to), `.${basename(to)}.old-`));
  await rename(to, join(aside, 'old')).catch((error: NodeJS.ErrnoException) => {
    if (error.code !== 'ENOENT') throw error;
  });
  await rename(from, to);
  await rm(aside, { recursive: true, force: true });
}
