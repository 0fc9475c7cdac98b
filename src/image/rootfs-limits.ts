/**
 * The two ways a root file system stops a build that are the user's to fix, each told in one
 * line with what to do: it has no room for what the build adds, or it is damaged.
 */
import { open } from 'node:fs/promises';
import { UserError } from '../errors.js';
import { readExt4Superblock } from './ext4-superblock.js';
import type { ImageLayout } from './layout.js';

const MiB = 1024 * 1024;
const mib = (bytes: number) => (bytes / MiB).toFixed(1);

/** What a root file system has free, or what a build needs of it. */
export interface RootfsSpace {
  bytes: number;
  inodes: number;
}

/** What the root file system of `layout` has free, from its superblock. */
export async function rootfsFree(layout: ImageLayout): Promise<RootfsSpace> {
  const handle = await open(layout.path, 'r');
  try {
    const sb = await readExt4Superblock(handle, layout.rootfs.offset);
    if (!sb) throw new UserError(`partition ${layout.rootfs.number} of ${layout.path} has no ext4 file system`);
    return { bytes: sb.freeBlocks * sb.blockSize, inodes: sb.freeInodes };
  } finally {
    await handle.close();
  }
}

const where = (layout: Pick<ImageLayout, 'path' | 'rootfs'>) =>
  `the root file system (partition ${layout.rootfs.number} of ${layout.path})`;

const GROW =
  'grow the image and its root partition first (docs/rootfs-space.md: truncate, sfdisk, resize2fs), or use a smaller docker.bundle or fewer overlay files';

/** `needed` exceeds `free`: the line that says so, before anything is written. */
export function rootfsTooSmall(
  layout: Pick<ImageLayout, 'path' | 'rootfs'>,
  free: RootfsSpace,
  needed: RootfsSpace,
): UserError | undefined {
  if (needed.bytes > free.bytes)
    return new UserError(`${where(layout)} has ${mib(free.bytes)} MiB free and this build needs ${mib(needed.bytes)} MiB; ${GROW}`);
  if (needed.inodes > free.inodes)
    return new UserError(`${where(layout)} has ${free.inodes} free inodes and this build needs ${needed.inodes}; ${GROW}`);
  return undefined;
}

/** libext2fs ran out of blocks, inodes or directory room while writing `path`. */
export function rootfsFull(layout: Pick<ImageLayout, 'path' | 'rootfs'>, free: RootfsSpace, path: string): UserError {
  return new UserError(
    `${where(layout)} had ${mib(free.bytes)} MiB and ${free.inodes} inodes free and this build needs more (it ran out writing ${path}); ${GROW}`,
  );
}

/** The file system cannot be read as ext4 (`why`): name it, and the e2fsck that shows and repairs it. */
export function rootfsDamaged(layout: Pick<ImageLayout, 'path' | 'rootfs'>, why: string): UserError {
  const device = `'${layout.path.replaceAll("'", "'\\''")}?offset=${layout.rootfs.offset}'`;
  return new UserError(
    `${where(layout)} is damaged: ${why}; check it with e2fsck -fn ${device} and repair it with e2fsck -fy ${device} (on a copy), or use a fresh stock image`,
  );
}
