/**
 * The bytes of an image its file systems rely on, holes included. An image made sparse keeps a
 * run of zeros as a hole, and a card keeps whatever it held where nothing is written: a zero
 * block of a file, a FAT with free entries, an inode table, a journal would read as old data.
 * So besides its data, a flash writes every block a file system has allocated (zeros where the
 * image has a hole) and leaves only free space as it was.
 */
import { execFile } from 'node:child_process';
import { open } from 'node:fs/promises';
import { promisify } from 'node:util';
import type { ByteRange } from '../data-extents.js';
import { UserError } from '../errors.js';
import { type DiskPartition, readLayout } from './layout.js';

const run = promisify(execFile);
const EXT4_MAGIC = 0xef53;

/** Every allocated byte range of every partition of `image`, and what lies before the first. */
export async function usedRanges(image: string): Promise<ByteRange[]> {
  const layout = await readLayout(image);
  const first = Math.min(...layout.partitions.map((p) => p.offset));
  // The MBR and the boot loader before the first partition, byte for byte.
  const ranges: ByteRange[] = [{ start: 0, end: first }];
  const handle = await open(image, 'r');
  try {
    for (const partition of layout.partitions) {
      const head = Buffer.alloc(2048);
      await handle.read(head, 0, head.length, partition.offset);
      if (head.readUInt16LE(1024 + 0x38) === EXT4_MAGIC) ranges.push(...(await ext4Used(image, partition)));
      else if (isFat(head)) ranges.push(...(await fatUsed(handle, partition, head)));
      // A file system this does not know: all of it.
      else ranges.push({ start: partition.offset, end: partition.offset + partition.size });
    }
  } finally {
    await handle.close();
  }
  return ranges;
}

/**
 * ext4's allocated blocks, as the complement of the free ones dumpe2fs lists per group (it reads
 * the bitmaps through libext2fs, which also works out the groups whose bitmap was never written).
 */
async function ext4Used(image: string, partition: DiskPartition): Promise<ByteRange[]> {
  let text: string;
  try {
    ({ stdout: text } = await run('dumpe2fs', [`${image}?offset=${partition.offset}`], { maxBuffer: 256 * 1024 * 1024 }));
  } catch (error) {
    throw new UserError(
      `dumpe2fs cannot read partition ${partition.number} of ${image} (${(error as Error).message.split('\n')[0]}); install e2fsprogs, or check the image with e2fsck`,
    );
  }
  const blockSize = Number(/^Block size:\s+(\d+)/m.exec(text)?.[1]);
  // What lies before the first group's first block (the 1 KiB boot block with 1 KiB blocks) too.
  const ranges: ByteRange[] = [{ start: partition.offset, end: partition.offset + 2048 }];
  const toBytes = (first: number, last: number) => ({
    start: partition.offset + first * blockSize,
    end: partition.offset + (last + 1) * blockSize,
  });
  for (const [, firstText, lastText, body] of text.matchAll(/^Group \d+: \(Blocks (\d+)-(\d+)\)[^\n]*\n((?:[ \t][^\n]*\n?)*)/gm)) {
    let next = Number(firstText);
    const free = /^\s+Free blocks: (.*)$/m.exec(body)?.[1].trim() ?? '';
    for (const span of free
      .split(',')
      .map((s) => s.trim())
      .filter(Boolean)) {
      const [from, to = from] = span.split('-').map(Number);
      if (from > next) ranges.push(toBytes(next, from - 1));
      next = to + 1;
    }
    if (next <= Number(lastText)) ranges.push(toBytes(next, Number(lastText)));
  }
  if (!blockSize || ranges.length === 1)
    throw new UserError(`dumpe2fs lists no block groups for partition ${partition.number} of ${image}; check the image with e2fsck`);
  return ranges;
}

/** A FAT boot sector: the 0x55aa signature and a sane bytes-per-sector and FAT count. */
function isFat(head: Buffer): boolean {
  const bytesPerSector = head.readUInt16LE(11);
  return head[510] === 0x55 && head[511] === 0xaa && [512, 1024, 2048, 4096].includes(bytesPerSector) && head[16] >= 1 && head[13] > 0;
}

/** FAT: the reserved sectors, the FATs and the root directory, then each cluster the FAT marks used. */
async function fatUsed(handle: import('node:fs/promises').FileHandle, partition: DiskPartition, bpb: Buffer): Promise<ByteRange[]> {
  const bytesPerSector = bpb.readUInt16LE(11);
  const sectorsPerCluster = bpb[13];
  const reserved = bpb.readUInt16LE(14);
  const fats = bpb[16];
  const rootEntries = bpb.readUInt16LE(17);
  const totalSectors = bpb.readUInt16LE(19) || bpb.readUInt32LE(32);
  const fatSectors = bpb.readUInt16LE(22) || bpb.readUInt32LE(36);
  const firstData = reserved + fats * fatSectors + Math.ceil((rootEntries * 32) / bytesPerSector);
  const clusters = Math.floor((totalSectors - firstData) / sectorsPerCluster);
  const kind = clusters < 4085 ? 12 : clusters < 65525 ? 16 : 32;
  const fat = Buffer.alloc(fatSectors * bytesPerSector);
  await handle.read(fat, 0, fat.length, partition.offset + reserved * bytesPerSector);
  const entry = (n: number) => {
    if (kind === 32) return fat.readUInt32LE(n * 4) & 0x0fffffff;
    if (kind === 16) return fat.readUInt16LE(n * 2);
    const pair = fat.readUInt16LE(Math.floor((n * 3) / 2));
    return n % 2 ? pair >> 4 : pair & 0xfff;
  };
  const clusterBytes = sectorsPerCluster * bytesPerSector;
  const dataStart = partition.offset + firstData * bytesPerSector;
  const ranges: ByteRange[] = [{ start: partition.offset, end: dataStart }];
  for (let n = 2; n < clusters + 2; n += 1) {
    if (entry(n) !== 0) ranges.push({ start: dataStart + (n - 2) * clusterBytes, end: dataStart + (n - 1) * clusterBytes });
  }
  return ranges;
}
