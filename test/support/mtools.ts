/** mtools on an image's FAT boot partition, read in place at its offset. */
import { execFile as execFileCallback } from 'node:child_process';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { bootOffset, partitionOffsets, tempDir } from './images.js';

const execFile = promisify(execFileCallback);
const MAX_OUTPUT = 64 * 1024 * 1024;

// mtools refuses a FAT whose size is not a whole number of CHS tracks unless told not to check.
const MTOOLS_ENV = { ...process.env, MTOOLS_SKIP_CHECK: '1' };

/** A file from the boot partition as mtools reads it. */
export async function mtypeBoot(img: string, path: string): Promise<string> {
  const { stdout } = await execFile('mtype', ['-i', `${img}@@${await bootOffset(img)}`, `::${path}`], {
    env: MTOOLS_ENV,
    maxBuffer: MAX_OUTPUT,
  });
  return stdout;
}

/**
 * Both partitions copied out with the real tools, for `diff -r`: the rootfs by debugfs rdump
 * (keeping modes and owners) at the top, the FAT by mcopy under BOOT/.
 */
export async function dumpPartitions(img: string): Promise<string> {
  const dir = await tempDir();
  const { partitions } = await partitionOffsets(img);
  const [boot, rootfs] = partitions;
  await execFile('debugfs', ['-R', `rdump / ${dir}`, `${img}?offset=${rootfs.offset}`], { maxBuffer: MAX_OUTPUT });
  await mkdir(join(dir, 'BOOT'));
  await execFile('mcopy', ['-s', '-n', '-i', `${img}@@${boot.offset}`, '::/*', join(dir, 'BOOT')], { env: MTOOLS_ENV });
  return dir;
}

/** The names in a boot partition directory as `mdir -b` lists them. */
export async function mdirBoot(img: string, dir: string): Promise<string[]> {
  const { stdout } = await execFile('mdir', ['-b', '-i', `${img}@@${await bootOffset(img)}`, `::${dir}`], { env: MTOOLS_ENV });
  return stdout.split('\n').filter(Boolean);
}

/** Deletes files from the boot partition with mdel, in place. */
export async function mdelBoot(img: string, paths: string[]): Promise<void> {
  await execFile('mdel', ['-i', `${img}@@${await bootOffset(img)}`, ...paths.map((path) => `::${path}`)], { env: MTOOLS_ENV });
}

/** Replaces (or adds) a file on the boot partition with `text`, in place. */
export async function mwriteBoot(img: string, path: string, text: string): Promise<void> {
  const dir = await tempDir();
  const file = join(dir, 'file');
  await writeFile(file, text);
  await execFile('mcopy', ['-o', '-i', `${img}@@${await bootOffset(img)}`, file, `::${path}`], { env: MTOOLS_ENV });
}
