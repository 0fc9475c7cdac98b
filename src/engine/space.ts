/**
 * What a list of operations adds to a partition at most, from the plan alone (before anything is
 * written), so a build that cannot fit is refused in seconds rather than failing half-way.
 * Deliberately generous: every file takes whole blocks of the largest usual ext4 block size, a
 * replaced file counts as new, and a stream whose size or file count is unknown counts as a few
 * small files.
 */
import type { Operation, Partition } from './operations.js';

const BLOCK = 4096;
/** A stream of unknown size (keys, certificates made at write time): this many small files. */
const UNKNOWN_STREAM_FILES = 16;
/** A stream of known size: its files' count is unknown, its last blocks and inodes are guessed. */
const STREAM_FILES = 16;
/** Extent and directory blocks the files need besides their data. */
const METADATA_SHARE = 0.01;

export interface SpaceNeeded {
  bytes: number;
  inodes: number;
}

const blocks = (bytes: number) => Math.ceil(bytes / BLOCK) * BLOCK;

function needOf(op: Operation): SpaceNeeded {
  switch (op.op) {
    case 'mkdir':
      return { bytes: BLOCK, inodes: 1 };
    case 'write':
      return { bytes: blocks(Buffer.byteLength(op.content)), inodes: 1 };
    case 'edit':
      return { bytes: BLOCK, inodes: 0 };
    case 'secret':
      // A key or certificate: a few KiB at most.
      return { bytes: BLOCK, inodes: 1 };
    case 'symlink':
      return { bytes: 0, inodes: 1 };
    case 'remove':
      return { bytes: 0, inodes: 0 };
    case 'stream':
      return op.bytes === undefined
        ? { bytes: UNKNOWN_STREAM_FILES * BLOCK, inodes: UNKNOWN_STREAM_FILES }
        : { bytes: blocks(op.bytes) + STREAM_FILES * BLOCK, inodes: STREAM_FILES };
  }
}

export function spaceNeeded(operations: Operation[], on: Partition): SpaceNeeded {
  const total = { bytes: 0, inodes: 0 };
  for (const op of operations.filter((o) => o.on === on)) {
    const need = needOf(op);
    total.bytes += need.bytes;
    total.inodes += need.inodes;
  }
  return { bytes: blocks(total.bytes * (1 + METADATA_SHARE)), inodes: total.inodes };
}
