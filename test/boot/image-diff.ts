/**
 * Which parts of a disk image a boot changed: the image is compared with a copy taken before,
 * block by block, and each changed block is named by partition (so "rootfs block 0" is the ext4
 * superblock's block). Used to show that the device does not write its SD card.
 */
import { open } from 'node:fs/promises';
import type { Partitions } from './qemu.js';

const BLOCK = 4096;
const CHUNK = 4 << 20;

/** `where` names of the changed 4 KiB blocks, in order; at most `limit` of them. */
export async function changedBlocks(before: string, after: string, partitions: Partitions, limit = 20): Promise<string[]> {
  const [a, b] = await Promise.all([open(before), open(after)]);
  try {
    const size = (await a.stat()).size;
    if ((await b.stat()).size !== size) return ['the image size changed'];
    const bufA = Buffer.alloc(CHUNK);
    const bufB = Buffer.alloc(CHUNK);
    const changed: string[] = [];
    for (let position = 0; position < size && changed.length < limit; position += CHUNK) {
      const [{ bytesRead }] = await Promise.all([a.read(bufA, 0, CHUNK, position), b.read(bufB, 0, CHUNK, position)]);
      if (bufA.subarray(0, bytesRead).equals(bufB.subarray(0, bytesRead))) continue;
      for (let offset = 0; offset < bytesRead && changed.length < limit; offset += BLOCK) {
        if (!bufA.subarray(offset, offset + BLOCK).equals(bufB.subarray(offset, offset + BLOCK)))
          changed.push(where(position + offset, partitions));
      }
    }
    return changed;
  } finally {
    await Promise.all([a.close(), b.close()]);
  }
}

function where(byte: number, partitions: Partitions): string {
  if (byte >= partitions.rootfs) return `rootfs block ${(byte - partitions.rootfs) / BLOCK}`;
  if (byte >= partitions.boot) return `boot (FAT) byte ${byte - partitions.boot}`;
  return `boot loader area byte ${byte}`;
}
