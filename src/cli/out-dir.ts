/**
 * Taking --out for a build: it must be writable, no other build may be writing into it, and what
 * a build killed there earlier left behind (the temp paths its journal names) goes first; a host/
 * it did not write is refused before any work.
 */
import { relative } from 'node:path';
import { checkHostKitDir } from '../host-kit/host-kit.js';
import { info } from '../log.js';
import { lockOutDir, type OutLock } from '../output/out-lock.js';
import { prepareOutputDir } from '../output/pending-output.js';
import { removeLeftovers } from '../output/temp-files.js';

export async function claimOutDir(outDir: string): Promise<OutLock> {
  await prepareOutputDir(outDir);
  const lock = lockOutDir(outDir);
  try {
    const removed = await removeLeftovers(outDir, lock.killed);
    if (removed.length > 0)
      info(`removed what an interrupted build left in ${outDir}: ${removed.map((path) => relative(outDir, path)).join(', ')}`);
    await checkHostKitDir(outDir);
  } catch (error) {
    lock.release();
    throw error;
  }
  return lock;
}
