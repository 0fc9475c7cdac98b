/**
 * Every temp name a build makes in --out, in one place, with the two ways they go away when a
 * build does not end normally: a build stopped by a signal removes its own (removeOnInterrupt),
 * and a build killed outright (SIGKILL, a power cut) leaves them to the next build into the same
 * --out, which removes them once it holds the --out lock (removeLeftovers).
 */
import { rmSync } from 'node:fs';
import { mkdtemp, readdir, rename, rm } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { exists } from '../files.js';
import { info } from '../log.js';

/** `<dir>/.<file>.<pid>.tmp`: a file of this run, renamed to `<dir>/<file>` when complete. */
export const tempFileOf = (dir: string, file: string) => join(dir, `.${file}.${process.pid}.tmp`);

/** A fresh private (0700) directory beside `finalPath`, `.<name>.new-XXXXXX`, or `.new-XXXXXX` in a directory. */
export const newDirBeside = (finalPath: string) => mkdtemp(join(dirname(finalPath), `.${basename(finalPath)}.new-`));
export const newDirIn = (dir: string) => mkdtemp(join(dir, '.new-'));
/** Where replaceDir moves the directory it replaces: `.<name>.old-XXXXXX/old`. */
export const oldDirBeside = (finalPath: string) => mkdtemp(join(dirname(finalPath), `.${basename(finalPath)}.old-`));

const OLD_DIR = /^\.(.+)\.old-[A-Za-z0-9]{6}$/;
const LEFTOVER = /^\.(.+\.\d+\.tmp|(.+\.)?new-[A-Za-z0-9]{6})$/;

const interrupted = new Set<string>();
const finalCleanups = new Set<() => void>();
let handlersInstalled = false;

const SIGNAL_STATUS = { SIGINT: 130, SIGTERM: 143, SIGHUP: 129 } as const;

// Synchronous: the process exits right after, so nothing asynchronous would run.
function cleanUpAndExit(signal: keyof typeof SIGNAL_STATUS): void {
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

/** Runs `cleanup` after the temp files if the build is stopped by a signal (the --out lock's release). */
export function lastOnInterrupt(cleanup: () => void): () => void {
  installHandlers();
  finalCleanups.add(cleanup);
  return () => finalCleanups.delete(cleanup);
}

/**
 * Removes what killed builds left in `dir` (their temp files and temp directories). A directory
 * replaceDir had moved aside while its replacement was not yet in place is put back: it is the one
 * the images in --out match. Only with the --out lock held, so no other build's files are touched.
 */
export async function removeLeftovers(dir: string): Promise<string[]> {
  const names = await readdir(dir).catch((error: NodeJS.ErrnoException) => {
    if (error.code === 'ENOENT') return [];
    throw error;
  });
  const removed: string[] = [];
  for (const name of names) {
    const path = join(dir, name);
    const old = OLD_DIR.exec(name);
    if (old && !(await exists(join(dir, old[1]))) && (await exists(join(path, 'old')))) {
      await rename(join(path, 'old'), join(dir, old[1]));
      info(`restored ${join(dir, old[1])}, which a build killed while replacing it had moved aside`);
    }
    if (!old && !LEFTOVER.test(name)) continue;
    await rm(path, { recursive: true, force: true });
    removed.push(path);
  }
  return removed;
}
