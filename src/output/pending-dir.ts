/**
 * A directory written in full beside its final place and swapped in only when complete, so a
 * failed build leaves the previous one (or none), never half of a new one.
 */
import { chmod, rename, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { killPoint } from '../timing.js';
import { newDirBeside, newDirIn, oldDirBeside, removeOnInterrupt } from './temp-files.js';

export interface PendingDir {
  /** Where to write now: a hidden temp directory beside the final one. */
  path: string;
  /** Replaces the final directory (and everything in it) with this one. */
  commit(): Promise<void>;
  discard(): Promise<void>;
}

export async function pendingDir(finalPath: string, mode: number): Promise<PendingDir> {
  const path = await newDirBeside(finalPath);
  const forget = removeOnInterrupt(path);
  await chmod(path, mode);
  return {
    path,
    async commit() {
      await replaceDir(path, finalPath);
      forget();
    },
    async discard() {
      await rm(path, { recursive: true, force: true });
      forget();
    },
  };
}

/**
 * Runs `fn` with a fresh private (0700) directory in `dir`, removed afterwards, also when the build
 * is stopped by a signal: for files made aside and then linked or renamed into place.
 */
export async function withScratchDir<T>(dir: string, fn: (scratch: string) => Promise<T>): Promise<T> {
  const scratch = await newDirIn(dir);
  const forget = removeOnInterrupt(scratch);
  try {
    return await fn(scratch);
  } finally {
    await rm(scratch, { recursive: true, force: true });
    forget();
  }
}

/** Puts directory `from` at `to`, replacing whatever directory is there (or none). */
export async function replaceDir(from: string, to: string): Promise<void> {
  // rename() cannot replace a non-empty directory: the old one moves aside first, so `to` is
  // missing for an instant but never holds a mix of old and new (a build killed in that instant
  // leaves the old one aside, and the next build puts it back: temp-files.ts).
  const aside = await oldDirBeside(to);
  await rename(to, join(aside, 'old')).catch((error: NodeJS.ErrnoException) => {
    if (error.code !== 'ENOENT') throw error;
  });
  killPoint(`replace ${to.split('/').pop()}`);
  await rename(from, to);
  await rm(aside, { recursive: true, force: true });
}
