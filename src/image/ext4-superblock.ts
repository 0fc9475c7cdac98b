import type { FileHandle } from 'node:fs/promises';

/**
 * The few ext4 superblock fields we need before handing the partition to libext2fs:
 * the UUID (to match boot.ini's root=UUID=), the flags that say the file system must be
 * checked first, the free blocks and inodes a build may use, and whether the superblock is
 * intact at all. libext2fs would happily write to a file system whose journal needs replaying,
 * so we look ourselves. Offsets from the ext4 on-disk format
 * (Documentation/filesystems/ext4/super.rst).
 */
export interface Ext4Superblock {
  uuid: string;
  label: string;
  needsRecovery: boolean;
  hasErrors: boolean;
  blockSize: number;
  blocksCount: number;
  freeBlocks: number;
  freeInodes: number;
  /** Why the superblock cannot be trusted (a failed checksum, impossible values), if it cannot. */
  damaged?: string;
  /** Features this tool cannot patch safely: libext2fs here would leave the file system failing e2fsck. */
  unsupported: string[];
}

/**
 * Features refused by name (ro_compat and incompat bits): quota and project keep usage in hidden
 * files the library does not update (e2fsck -fn then fails on an image that built with rc 0);
 * bigalloc, inline_data and casefold change how blocks and names are laid out.
 */
const UNSUPPORTED_RO_COMPAT: [number, string][] = [
  [0x100, 'quota'],
  [0x200, 'bigalloc'],
  [0x2000, 'project'],
];
const UNSUPPORTED_INCOMPAT: [number, string][] = [
  [0x8000, 'inline_data'],
  [0x20000, 'casefold'],
];

const SUPERBLOCK_OFFSET = 1024;
const EXT4_MAGIC = 0xef53;
const INCOMPAT_RECOVER = 0x4;
const INCOMPAT_64BIT = 0x80;
const RO_COMPAT_METADATA_CSUM = 0x400;
const STATE_ERRORS = 0x2;
const CHECKSUM_OFFSET = 0x3fc;

/** CRC32C (Castagnoli), as ext4's metadata_csum computes it: seed ~0 unless chained, no final inversion. */
const CRC32C_TABLE = Array.from({ length: 256 }, (_, n) => {
  let c = n;
  for (let k = 0; k < 8; k += 1) c = c & 1 ? 0x82f63b78 ^ (c >>> 1) : c >>> 1;
  return c >>> 0;
});

export function crc32c(data: Buffer, seed = 0xffffffff): number {
  let crc = seed;
  for (const byte of data) crc = CRC32C_TABLE[(crc ^ byte) & 0xff] ^ (crc >>> 8);
  return crc >>> 0;
}

/** A 64-bit count whose high half is only there with the 64bit feature. */
const count64 = (sb: Buffer, lo: number, hi: number, wide: boolean) => (wide ? sb.readUInt32LE(hi) : 0) * 2 ** 32 + sb.readUInt32LE(lo);

function damage(sb: Buffer, counts: { blocks: number; freeBlocks: number; inodes: number; freeInodes: number }): string | undefined {
  if (sb.readUInt32LE(0x64) & RO_COMPAT_METADATA_CSUM && crc32c(sb.subarray(0, CHECKSUM_OFFSET)) !== sb.readUInt32LE(CHECKSUM_OFFSET)) {
    return 'its superblock checksum does not match';
  }
  const logBlockSize = sb.readUInt32LE(0x18);
  if (logBlockSize > 6 || sb.readUInt32LE(0x20) === 0 || sb.readUInt32LE(0x28) === 0 || counts.blocks === 0 || counts.inodes === 0) {
    return 'its superblock holds impossible sizes';
  }
  if (counts.freeBlocks > counts.blocks || counts.freeInodes > counts.inodes)
    return 'its superblock counts more free blocks or inodes than there are';
  return undefined;
}

export async function readExt4Superblock(handle: FileHandle, partitionOffset: number): Promise<Ext4Superblock | undefined> {
  const sb = Buffer.alloc(1024);
  const { bytesRead } = await handle.read(sb, 0, sb.length, partitionOffset + SUPERBLOCK_OFFSET);
  if (bytesRead < sb.length || sb.readUInt16LE(0x38) !== EXT4_MAGIC) return undefined;
  const incompat = sb.readUInt32LE(0x60);
  const wide = (incompat & INCOMPAT_64BIT) !== 0;
  const counts = {
    blocks: count64(sb, 0x4, 0x150, wide),
    freeBlocks: count64(sb, 0xc, 0x158, wide),
    inodes: sb.readUInt32LE(0x0),
    freeInodes: sb.readUInt32LE(0x10),
  };
  const hex = sb.subarray(0x68, 0x78).toString('hex');
  return {
    uuid: `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`,
    label: sb.subarray(0x78, 0x88).toString('latin1').replace(/\0.*$/s, ''),
    needsRecovery: (incompat & INCOMPAT_RECOVER) !== 0,
    hasErrors: (sb.readUInt16LE(0x3a) & STATE_ERRORS) !== 0,
    blockSize: 1024 << Math.min(sb.readUInt32LE(0x18), 6),
    blocksCount: counts.blocks,
    freeBlocks: counts.freeBlocks,
    freeInodes: counts.freeInodes,
    damaged: damage(sb, counts),
    unsupported: [
      ...UNSUPPORTED_RO_COMPAT.filter(([bit]) => sb.readUInt32LE(0x64) & bit),
      ...UNSUPPORTED_INCOMPAT.filter(([bit]) => incompat & bit),
    ].map(([, name]) => name),
  };
}
