/**
 * Taking --out for a build: it must be writable, no other build may be writing into it, and what
 * a build killed there earlier left behind (the temp paths its journal names) goes first; a host/
 * it did not write is refused before any work.
 */
import { lstat } from 'node:fs/promises';
import { join, relative } from 'node:path';
import { UserError } from '../errors.js';
import { checkHostKitDir } from '../host-kit/host-kit.js';
import { info } from '../log.js';
import { lockOutDir, type OutLock } from '../output/out-lock.js';
import { prepareOutputDir, releaseFiles } from '../output/pending-output.js';
import { removeLeftovers } from '../output/temp-files.js';

/** Refuses, before any work, a directory where the build will rename one of `names`' files: it would fail only at the end. */
async function checkFinalPaths(outDir: string, names: string[]): Promise<void> {
  for (const name of names) {
    for (const file of [`${name}.img`, `${name}.img.sha256`, ...Object.values(releaseFiles(name))]) {
      const path = join(outDir, file);
      const found = await lstat(path).catch(() => undefined);
      if (found?.isDirectory())
        throw new UserError(`${path} is a directory, where the build writes a file: move it away, or pass another --out or --name`);
    }
  }
}

/** Takes `outDir` for a build of the images `names` (`<name>.img` and the files beside it). */
export async function claimOutDir(outDir: string, names: string[]): Promise<OutLock> {
  await prepareOutputDir(outDir);
  const lock = lockOutDir(outDir);
  try {
    const removed = await removeLeftovers(outDir, lock.killed);
    if (removed.length > 0)
      info(`removed what an interrupted build left in ${outDir}: ${removed.map((path) => relative(outDir, path)).join(', ')}`);
    await checkHostKitDir(outDir);
    await checkFinalPaths(outDir, names);
  } catch (error) {
    lock.release();
    throw error;
  }
  return lock;
}
