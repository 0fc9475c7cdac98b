/**
 * The temp paths a build makes in --out (named by out-layout.ts), and the two ways they go away
 * when a build does not end normally: a build stopped by a signal removes its own (removeOnInterrupt),
 * and a build killed outright (SIGKILL, a power cut) leaves them to the next build into the same
 * --out, which removes exactly the paths the killed build's journal names (removeLeftovers).
 * Each name is recorded in the journal before the path is made.
 */
import { rmSync } from 'node:fs';
import { mkdir, rename, rm } from 'node:fs/promises';
import { exists } from '../files.js';
import { info } from '../log.js';
import { type KilledBuild, recordTempPath } from './build-journal.js';
import { leftoverOf, newDirNameBeside, newDirNameIn, oldDirNameBeside, tempFileName } from './out-layout.js';

/** `<dir>/.<file>.<pid>.tmp`: a file of this run, renamed to `<dir>/<file>` when complete. Recorded as the caller makes it. */
export function tempFileOf(dir: string, file: string): string {
  const path = tempFileName(dir, file);
  recordTempPath(path);
  return path;
}

/** A fresh private (0700) directory named by `nextName`, recorded before it is made. */
async function newPrivateDir(nextName: () => string): Promise<string> {
  for (;;) {
    const path = nextName();
    recordTempPath(path);
    try {
      await mkdir(path, { mode: 0o700 });
      return path;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
    }
  }
}

/** A fresh private (0700) directory beside `finalPath`, `.<name>.new-XXXXXX`, or `.new-XXXXXX` in a directory. */
export const newDirBeside = (finalPath: string) => newPrivateDir(() => newDirNameBeside(finalPath));
export const newDirIn = (dir: string) => newPrivateDir(() => newDirNameIn(dir));
/** Where a directory being replaced is moved: `.<name>.old-XXXXXX/old` (OLD_INSIDE). */
export const oldDirBeside = (finalPath: string) => newPrivateDir(() => oldDirNameBeside(finalPath));

const firstCleanups = new Set<() => void>();
const interrupted = new Set<string>();
const finalCleanups = new Set<() => void>();
let handlersInstalled = false;

const SIGNAL_STATUS = { SIGINT: 130, SIGTERM: 143, SIGHUP: 129 } as const;

// Synchronous: the process exits right after, so nothing asynchronous would run.
function cleanUpAndExit(signal: keyof typeof SIGNAL_STATUS): void {
  for (const cleanup of firstCleanups) cleanup();
  for (const path of interrupted) rmSync(path, { recursive: true, force: true });
  for (const cleanup of finalCleanups) cleanup();
  process.stderr.write(`\ninterrupted (${signal}): no image written, temp files removed\n`);
  process.exit(SIGNAL_STATUS[signal]);
}

function installHandlers(): void {
  if (handlersInstalled) return;
  handlersInstalled = true;
  for (const signal of Object.keys(SIGNAL_STATUS) as (keyof typeof SIGNAL_STATUS)[]) process.once(signal, () => cleanUpAndExit(signal));
}

/** Removes `path` (a file or a directory) if the build is stopped by a signal; the returned function forgets it. */
export function removeOnInterrupt(path: string): () => void {
  installHandlers();
  interrupted.add(path);
  return () => interrupted.delete(path);
}

/** Runs `cleanup` (synchronous) before the temp files are removed if the build is stopped by a signal (a replaced directory put back). */
export function firstOnInterrupt(cleanup: () => void): () => void {
  installHandlers();
  firstCleanups.add(cleanup);
  return () => firstCleanups.delete(cleanup);
}

/** Runs `cleanup` after the temp files if the build is stopped by a signal (the --out lock's release). */
export function lastOnInterrupt(cleanup: () => void): () => void {
  installHandlers();
  finalCleanups.add(cleanup);
  return () => finalCleanups.delete(cleanup);
}

/**
 * Removes the temp paths a killed build's journal names in `outDir`, and nothing else (out-layout.ts
 * decides which lines are). A directory it had moved aside goes back to its place when the killed
 * build's images were not yet in place: it is the one the images in --out match. Only with the
 * --out lock held.
 */
export async function removeLeftovers(outDir: string, killed: KilledBuild): Promise<string[]> {
  const removed: string[] = [];
  for (const entry of killed.paths) {
    const leftover = leftoverOf(outDir, entry);
    if (!leftover || !(await exists(leftover.path))) continue;
    const { restore } = leftover;
    if (restore && !killed.committed && (await exists(restore.kept))) {
      // What is at its place now is what the killed build put there: it goes with the build.
      await rm(restore.place, { recursive: true, force: true });
      await rename(restore.kept, restore.place);
      info(`restored ${restore.place}, which a build killed before its images were in place had replaced`);
    }
    await rm(leftover.path, { recursive: true, force: true });
    removed.push(leftover.path);
  }
  return removed;
}
