import type { Disk } from 'file-disk';
import { UserError } from '../errors.js';
import { crc32c } from './ext4-superblock.js';

/*
 * Owners and groups above 65535 in the inode table. The ext2fs binding keeps only the low 16 bits
 * of an id (its chown stores `uid & 0xffff`, its stat reads `i_uid`), so 65536:70000 became
 * 0:4464. The high halves live in the inode's osd2 area (l_i_uid_high, l_i_gid_high); we read
 * them from the disk libext2fs writes through, and write them after it has unmounted, since its
 * inode cache would otherwise write a stale copy back. Offsets from the ext4 on-disk format
 * (Documentation/filesystems/ext4/{super,group_descr,inodes}.rst).
 */

const SUPERBLOCK_OFFSET = 1024;
const INCOMPAT_META_BG = 0x10;
const INCOMPAT_64BIT = 0x80;
const INCOMPAT_CSUM_SEED = 0x2000;
const RO_COMPAT_METADATA_CSUM = 0x400;
const GOOD_OLD_INODE_SIZE = 128;
const UID_HIGH = 0x78;
const GID_HIGH = 0x7a;
const CHECKSUM_LO = 0x7c;
const EXTRA_ISIZE = 0x80;
const CHECKSUM_HI = 0x82;

export interface Ids {
  uid: number;
  gid: number;
}

export class InodeOwners {
  /** Ids set in this session, by inode number, written by `flush`. */
  private readonly pending = new Map<number, Ids>();

  private constructor(
    private readonly disk: Disk,
    private readonly partitionOffset: number,
    private readonly sb: Buffer,
  ) {}

  static async read(disk: Disk, partitionOffset: number): Promise<InodeOwners> {
    const sb = Buffer.alloc(1024);
    await disk.read(sb, 0, sb.length, partitionOffset + SUPERBLOCK_OFFSET);
    return new InodeOwners(disk, partitionOffset, sb);
  }

  private get blockSize(): number {
    return 1024 << this.sb.readUInt32LE(0x18);
  }

  private get inodeSize(): number {
    return this.sb.readUInt32LE(0x4c) === 0 ? GOOD_OLD_INODE_SIZE : this.sb.readUInt16LE(0x58);
  }

  /** Where inode `ino` starts in the image file; undefined with meta_bg, whose descriptors we do not walk. */
  private async inodeOffset(ino: number): Promise<number | undefined> {
    const incompat = this.sb.readUInt32LE(0x60);
    if (incompat & INCOMPAT_META_BG) return undefined;
    const perGroup = this.sb.readUInt32LE(0x28);
    const group = Math.floor((ino - 1) / perGroup);
    const wide = (incompat & INCOMPAT_64BIT) !== 0;
    const descSize = wide ? this.sb.readUInt16LE(0xfe) : 32;
    const descriptor = Buffer.alloc(descSize);
    const table = (this.sb.readUInt32LE(0x14) + 1) * this.blockSize;
    await this.disk.read(descriptor, 0, descSize, this.partitionOffset + table + group * descSize);
    const inodeTable = descriptor.readUInt32LE(0x8) + (wide && descSize >= 64 ? descriptor.readUInt32LE(0x28) * 2 ** 32 : 0);
    return this.partitionOffset + inodeTable * this.blockSize + ((ino - 1) % perGroup) * this.inodeSize;
  }

  /** The full ids of inode `ino`, given the low halves libext2fs reported. */
  async idsOf(ino: number, low: Ids): Promise<Ids> {
    const set = this.pending.get(ino);
    if (set) return set;
    const offset = await this.inodeOffset(ino);
    if (offset === undefined) return low;
    const high = Buffer.alloc(4);
    await this.disk.read(high, 0, 4, offset + UID_HIGH);
    return { uid: high.readUInt16LE(0) * 0x10000 + low.uid, gid: high.readUInt16LE(2) * 0x10000 + low.gid };
  }

  /** Records the ids libext2fs was just asked to set on inode `ino`, for `flush` to complete. */
  set(ino: number, ids: Ids): void {
    this.pending.set(ino, ids);
  }

  /** Forgets a removed inode, whose number a new file may take. */
  forget(ino: number): void {
    this.pending.delete(ino);
  }

  /** Writes the high halves of every id set in this session; call once libext2fs has unmounted. */
  async flush(): Promise<void> {
    for (const [ino, ids] of this.pending) {
      const offset = await this.inodeOffset(ino);
      if (offset === undefined) {
        if (ids.uid > 0xffff || ids.gid > 0xffff) {
          throw new UserError(
            `the root file system uses the ext4 feature meta_bg, with which owners above 65535 are not supported; use ids up to 65535`,
          );
        }
        continue;
      }
      const inode = Buffer.alloc(this.inodeSize);
      await this.disk.read(inode, 0, inode.length, offset);
      const uidHigh = Math.floor(ids.uid / 0x10000);
      const gidHigh = Math.floor(ids.gid / 0x10000);
      if (inode.readUInt16LE(UID_HIGH) === uidHigh && inode.readUInt16LE(GID_HIGH) === gidHigh) continue;
      inode.writeUInt16LE(uidHigh, UID_HIGH);
      inode.writeUInt16LE(gidHigh, GID_HIGH);
      if (this.sb.readUInt32LE(0x64) & RO_COMPAT_METADATA_CSUM) this.checksum(ino, inode);
      await this.disk.write(inode, 0, inode.length, offset);
    }
    this.pending.clear();
  }

  /** metadata_csum's inode checksum: crc32c over the inode with its checksum fields zeroed, seeded per inode. */
  private checksum(ino: number, inode: Buffer): void {
    const seedBase = this.sb.readUInt32LE(0x60) & INCOMPAT_CSUM_SEED ? this.sb.readUInt32LE(0x270) : crc32c(this.sb.subarray(0x68, 0x78));
    const le32 = (value: number) => {
      const bytes = Buffer.alloc(4);
      bytes.writeUInt32LE(value);
      return bytes;
    };
    const seed = crc32c(inode.subarray(0x64, 0x68), crc32c(le32(ino), seedBase));
    const hasHigh = inode.length > GOOD_OLD_INODE_SIZE && inode.readUInt16LE(EXTRA_ISIZE) >= CHECKSUM_HI + 2 - GOOD_OLD_INODE_SIZE;
    inode.writeUInt16LE(0, CHECKSUM_LO);
    if (hasHigh) inode.writeUInt16LE(0, CHECKSUM_HI);
    const sum = crc32c(inode, seed);
    inode.writeUInt16LE(sum & 0xffff, CHECKSUM_LO);
    if (hasHigh) inode.writeUInt16LE(sum >>> 16, CHECKSUM_HI);
  }
}
