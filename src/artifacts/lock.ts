import { readFile, rename } from 'node:fs/promises';
import { UserError } from '../errors.js';
import { writeFile } from '../files.js';

/**
 * A lock file in the download cache: what each downloaded file was on its first verified
 * download, keyed by its file name. Later builds check the cached file against it, so a
 * source that has no published checksum is still pinned once it has been seen (and the
 * lock is committed).
 */
export type Lock = Record<string, LockEntry>;
export interface LockEntry {
  sha256: string;
  size: number;
}

/** The lock at `path`; none yet is an empty lock. */
export async function readLock(path: string): Promise<Lock> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return {};
    throw error;
  }
  try {
    return JSON.parse(text) as Lock;
  } catch (error) {
    throw new UserError(`cannot read ${path}: ${(error as Error).message}; restore it from git`);
  }
}

/** Replaces the lock atomically, so an interrupted build never leaves half a file. */
export async function writeLock(path: string, lock: Lock): Promise<void> {
  const temp = `${path}.tmp`;
  await writeFile(temp, `${JSON.stringify(lock, null, 2)}\n`);
  await rename(temp, path);
}
