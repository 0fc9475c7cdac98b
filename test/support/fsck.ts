/** The real file system checkers on an image's partitions: ok when they find nothing to fix. */
import { execFile as execFileCallback } from 'node:child_process';
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { partitionOffsets, rootfsSpec, tempDir } from './images.js';

const execFile = promisify(execFileCallback);
const MAX_OUTPUT = 64 * 1024 * 1024;

/** Runs a tool and returns its exit status and combined output instead of throwing on failure. */
async function check(command: string, args: string[]): Promise<{ ok: boolean; output: string }> {
  try {
    const { stdout, stderr } = await execFile(command, args, { maxBuffer: MAX_OUTPUT });
    return { ok: true, output: stdout + stderr };
  } catch (error) {
    const e = error as { code?: unknown; stdout?: string; stderr?: string };
    if (typeof e.code !== 'number') throw error;
    return { ok: false, output: `${e.stdout ?? ''}${e.stderr ?? ''}` };
  }
}

/** `e2fsck -fn` on the rootfs: ok when it finds nothing to fix. */
export async function e2fsckClean(img: string): Promise<{ ok: boolean; output: string }> {
  return check('e2fsck', ['-fn', await rootfsSpec(img)]);
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
    await execFile('dd', [
      `if=${img}`,
      `of=${copy}`,
      'bs=1M',
      'iflag=skip_bytes,count_bytes',
      `skip=${boot.offset}`,
      `count=${boot.size}`,
      'conv=sparse',
      'status=none',
    ]);
    return await check('fsck.fat', ['-n', copy]);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}
