/**
 * A directory written in full beside its final place and swapped in only when complete, so a
 * failed build leaves the previous one (or none), never half of a new one. The directory it
 * replaces is kept aside until the build's images are in place, so a build that fails after the
 * swap (the images' rename) puts the old one back: secrets/ and host/ change only with the images.
 */
import { renameSync, rmSync } from 'node:fs';
import { chmod, rename, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { killPoint } from '../timing.js';
import { buildCommitted } from './build-journal.js';
import { OLD_INSIDE } from './out-layout.js';
import { firstOnInterrupt, newDirBeside, newDirIn, oldDirBeside, removeOnInterrupt } from './temp-files.js';

export interface PendingDir {
  /** Where to write now: a hidden temp directory beside the final one. */
  path: string;
  /** Puts this directory at the final place, the one there (and everything in it) kept aside until settle(). */
  commit(): Promise<void>;
  /** Removes this directory; after commit(), puts back the one it replaced, unless the images are in place. */
  discard(): Promise<void>;
  /** After commit(), once the images are in place: the replaced directory goes. */
  settle(): Promise<void>;
}

export async function pendingDir(finalPath: string, mode: number): Promise<PendingDir> {
  const path = await newDirBeside(finalPath);
  const forget = removeOnInterrupt(path);
  await chmod(path, mode);
  let swap: Swap | undefined;
  let settled = false;
  return {
    path,
    async commit() {
      swap = await swapIn(path, finalPath);
      forget();
    },
    async discard() {
      if (settled) return;
      // Once the images are in place they match this directory: a later failure keeps it.
      if (swap && buildCommitted()) await swap.settle();
      else if (swap) await swap.undo();
      else await rm(path, { recursive: true, force: true });
      forget();
    },
    async settle() {
      settled = true;
      await swap?.settle();
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

/** Puts directory `from` at `to`, replacing whatever directory is there (or none), at once. */
export async function replaceDir(from: string, to: string): Promise<void> {
  await (await swapIn(from, to)).settle();
}

interface Swap {
  /** Puts the replaced directory back (or none), removing the new one. */
  undo(): Promise<void>;
  /** Removes the replaced directory. */
  settle(): Promise<void>;
}

/** Puts directory `from` at `to`, keeping the directory there (if any) aside in `.<to>.old-XXXXXX/old`. */
async function swapIn(from: string, to: string): Promise<Swap> {
  // rename() cannot replace a non-empty directory: the old one moves aside first, so `to` is
  // missing for an instant but never holds a mix of old and new (a build killed then leaves the
  // old one aside, and the next build puts it back: temp-files.ts).
  const aside = await oldDirBeside(to);
  const kept = join(aside, OLD_INSIDE);
  const hadOld = await rename(to, kept).then(
    () => true,
    (error: NodeJS.ErrnoException) => {
      if (error.code !== 'ENOENT') throw error;
      return false;
    },
  );
  const undoSync = () => {
    rmSync(to, { recursive: true, force: true });
    if (hadOld) renameSync(kept, to);
    rmSync(aside, { recursive: true, force: true });
  };
  // Stopped by a signal before the images are in place: the old directory is the one they match.
  const forget = firstOnInterrupt(() => (buildCommitted() ? rmSync(aside, { recursive: true, force: true }) : undoSync()));
  killPoint(`replace ${to.split('/').pop()}`);
  try {
    await rename(from, to);
  } catch (error) {
    if (hadOld) await rename(kept, to);
    await rm(aside, { recursive: true, force: true });
    forget();
    throw error;
  }
  return {
    async undo() {
      await rm(to, { recursive: true, force: true });
      if (hadOld) await rename(kept, to);
      await rm(aside, { recursive: true, force: true });
      forget();
    },
    async settle() {
      await rm(aside, { recursive: true, force: true });
      forget();
    },
  };
}
