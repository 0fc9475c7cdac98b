/** The real file system checkers on an image's partitions: ok when they find nothing to fix. */
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { partitionOffsets, rootfsSpec, tempDir } from './images.js';
import { $, type ProcessPromise } from './zx.js';

/** A checker's verdict (exit status 0) and its output; a finding is a result, not an error. */
async function check(checker: ProcessPromise): Promise<{ ok: boolean; output: string }> {
  const { exitCode, stdout, stderr } = await checker.nothrow();
  if (exitCode === null) throw new Error(`${checker.cmd}: killed before it finished`);
  return { ok: exitCode === 0, output: stdout + stderr };
}

/** `e2fsck -fn` on the rootfs: ok when it finds nothing to fix. */
export async function e2fsckClean(img: string): Promise<{ ok: boolean; output: string }> {
  return check($`e2fsck -fn ${await rootfsSpec(img)}`);
}

/** `fsck.fat -n` on the boot partition: ok when it finds nothing to fix. */
export async function fsckFatClean(img: string): Promise<{ ok: boolean; output: string }> {
  const { partitions } = await partitionOffsets(img);
  const boot = partitions.find((p) => p.number === 1);
  if (!boot) throw new Error(`${img} has no boot partition`);
  // fsck.fat has no offset option: it checks a sparse copy of the partition.
  const dir = await tempDir();
  try {
    const copy = join(dir, 'boot.fat');
    await $`dd if=${img} of=${copy} bs=1M iflag=skip_bytes,count_bytes skip=${boot.offset} count=${boot.size} conv=sparse status=none`;
    return await check($`fsck.fat -n ${copy}`);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}
