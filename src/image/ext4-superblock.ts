import type { FileHandle } from 'node:fs/promises';

/**
 * The few ext4 superblock fields we need before handing the partition to libext2fs:
 * the UUID (to match boot.ini's root=UUID=) and the flags that say the file system
 * must be checked first. libext2fs would happily write to a file system whose journal
 * needs replaying, so we look ourselves. Offsets from the ext4 on-disk format
 * (Documentation/filesystems/ext4/super.rst).
 */
export interface Ext4Superblock {
  uuid: string;
  label: string;
  needsRecovery: boolean;
  hasErrors: boolean;
  blockSize: number;
  blocksCount: number;
}

const SUPERBLOCK_OFFSET = 1024;
const EXT4_MAGIC = 0xef53;
const INCOMPAT_RECOVER = 0x4;
const INCOMPAT_64BIT = 0x80;
const STATE_ERRORS = 0x2;

export async function readExt4Superblock(handle: FileHandle, partitionOffset: number): Promise<Ext4Superblock | undefined> {
  const sb = Buffer.alloc(1024);
  const { bytesRead } = await handle.read(sb, 0, sb.length, partitionOffset + SUPERBLOCK_OFFSET);
  if (bytesRead < sb.length || sb.readUInt16LE(0x38) !== EXT4_MAGIC) return undefined;
  const incompat = sb.readUInt32LE(0x60);
  const lo = sb.readUInt32LE(0x4);
  const hi = incompat & INCOMPAT_64BIT ? sb.readUInt32LE(0x150) : 0;
  const hex = sb.subarray(0x68, 0x78).toString('hex');
  return {
    uuid: `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`,
    label: sb.subarray(0x78, 0x88).toString('latin1').replace(/\0.*$/s, ''),
    needsRecovery: (incompat & INCOMPAT_RECOVER) !== 0,
    hasErrors: (sb.readUInt16LE(0x3a) & STATE_ERRORS) !== 0,
    blockSize: 1024 << sb.readUInt32LE(0x18),
    blocksCount: hi * 2 ** 32 + lo,
  };
}
