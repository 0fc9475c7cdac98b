import { open } from 'node:fs/promises';
import { FileDisk } from 'file-disk';
import { getPartitions, type MBRPartition } from 'partitioninfo';
import { UserError } from '../errors.js';
import { readExt4Superblock } from './ext4-superblock.js';

/** Where a partition sits in the image file, in bytes. */
export interface DiskPartition {
  /** 1-based, as Linux numbers them (/dev/mmcblk0pN). */
  number: number;
  offset: number;
  size: number;
  mbrType: number;
}

export interface ImageLayout {
  path: string;
  size: number;
  boot: DiskPartition & { fat: 'FAT16' | 'FAT32' | 'FAT12' };
  rootfs: DiskPartition & { uuid: string };
  /** How many ext4 partitions there are: more than one needs boot.ini's root=UUID= to choose. */
  ext4Count: number;
  /** Disk identifier from the MBR, e.g. "0x3cedfd53", for the summary and inspect. */
  diskId: string;
  /** Every non-empty partition of the table, in table order (for inspect). */
  partitions: DiskPartition[];
}

// MBR type bytes of FAT partitions (FAT12, FAT16 <32M, FAT16, FAT32 CHS, FAT32 LBA, FAT16 LBA).
const FAT_TYPES = new Set([0x01, 0x04, 0x06, 0x0b, 0x0c, 0x0e]);
const LINUX_TYPE = 0x83;
const GPT_PROTECTIVE = 0xee;
const SECTOR = 512;

/**
 * Reads the partition table and finds the FAT boot partition and the ext4 rootfs.
 * The rootfs is the Linux partition whose ext4 UUID boot.ini names in `root=UUID=`, or the
 * partition cmdline.txt names by number in `root=PARTUUID=` (passed in as `rootHint` once the
 * boot partition has been read), else the only Linux partition with an ext4 superblock.
 */
export async function readLayout(path: string, rootHint?: string | { partition: number }): Promise<ImageLayout> {
  const rootUuidHint = typeof rootHint === 'string' ? rootHint : undefined;
  const handle = await open(path, 'r');
  try {
    const { size } = await handle.stat();
    const name = path;
    if (size < 2 * 1024 * 1024) {
      throw new UserError(`${name} is too small (${size} bytes) to be an ODROID disk image: pass a whole-disk .img`);
    }
    const mbr = Buffer.alloc(SECTOR);
    await handle.read(mbr, 0, SECTOR, 0);
    if (mbr[510] !== 0x55 || mbr[511] !== 0xaa) {
      throw new UserError(`${name} has no partition table (no MBR signature): pass a whole-disk image such as HardKernel's ODROID-C2 .img`);
    }
    const disk = new FileDisk(handle, true);
    let table: Awaited<ReturnType<typeof getPartitions>>;
    try {
      table = await getPartitions(disk, { includeExtended: false });
    } catch (error) {
      throw new UserError(`cannot read the partition table of ${name} (${(error as Error).message}): pass a whole-disk MBR image`);
    }
    if (table.type === 'gpt' || table.partitions.some((p) => (p as MBRPartition).type === GPT_PROTECTIVE)) {
      throw new UserError(
        `${name} uses a GPT partition table; only MBR images laid out like HardKernel's ODROID-C2 images (FAT boot + ext4 root) are supported`,
      );
    }
    const partitions = (table.partitions as MBRPartition[])
      .filter((p) => p.size > 0)
      .map((p) => ({
        number: p.index,
        offset: p.offset,
        size: p.size,
        mbrType: p.type,
      }));
    if (partitions.length === 0) {
      throw new UserError(`${name} has an empty partition table: pass a whole-disk image with a FAT boot and an ext4 root partition`);
    }
    for (const p of partitions) {
      if (p.offset + p.size > size) {
        throw new UserError(
          `partition ${p.number} of ${name} ends beyond the end of the file: the image is truncated, download or decompress it again`,
        );
      }
    }
    const fat = partitions.find((p) => FAT_TYPES.has(p.mbrType));
    if (!fat) {
      throw new UserError(
        `${name} has no FAT boot partition (MBR types found: ${describeTypes(partitions)}): this does not look like an ODROID image`,
      );
    }
    const linux = [];
    for (const p of partitions.filter((q) => q.mbrType === LINUX_TYPE)) {
      const sb = await readExt4Superblock(handle, p.offset);
      if (sb) linux.push({ ...p, uuid: sb.uuid });
    }
    if (linux.length === 0) {
      const unreadable = partitions.find((p) => p.mbrType === LINUX_TYPE);
      if (unreadable) {
        // A Linux partition without an ext4 superblock: damaged (overwritten), or never formatted.
        const device = `'${path.replaceAll("'", "'\\''")}?offset=${unreadable.offset}'`;
        throw new UserError(
          `partition ${unreadable.number} of ${name} (the Linux partition) holds no ext4 superblock: the root file system is damaged or missing; check it with e2fsck -fn ${device}, or use a fresh stock image`,
        );
      }
      throw new UserError(
        `${name} has no ext4 root partition (MBR types found: ${describeTypes(partitions)}): pass an image with an ext4 Linux partition`,
      );
    }
    const named = rootUuidHint ? linux.find((p) => p.uuid === rootUuidHint.toLowerCase()) : undefined;
    if (rootUuidHint && !named) {
      throw new UserError(
        `the boot config of ${name} boots root=UUID=${rootUuidHint} but no ext4 partition has that UUID: the image would not boot, fix boot.ini or pass another image`,
      );
    }
    const numbered = typeof rootHint === 'object' ? linux.find((p) => p.number === rootHint.partition) : undefined;
    if (typeof rootHint === 'object' && !numbered) {
      throw new UserError(
        `the boot config of ${name} boots partition ${rootHint.partition} (root=PARTUUID=) but it is not an ext4 Linux partition: the image would not boot, fix cmdline.txt or pass another image`,
      );
    }
    const rootfs = named ?? numbered ?? linux[0];
    return {
      path,
      size,
      boot: { ...fat, fat: fatKind(fat, await readSector(handle, fat.offset)) },
      rootfs,
      ext4Count: linux.length,
      diskId: `0x${mbr.readUInt32LE(440).toString(16).padStart(8, '0')}`,
      partitions,
    };
  } finally {
    await handle.close();
  }
}

async function readSector(handle: import('node:fs/promises').FileHandle, offset: number): Promise<Buffer> {
  const buf = Buffer.alloc(SECTOR);
  await handle.read(buf, 0, SECTOR, offset);
  return buf;
}

/** The FAT flavour, from the boot sector's own file-system type string (what mkfs wrote). */
function fatKind(p: DiskPartition, bootSector: Buffer): 'FAT12' | 'FAT16' | 'FAT32' {
  if (bootSector.toString('latin1', 82, 87) === 'FAT32') return 'FAT32';
  const label = bootSector.toString('latin1', 54, 59);
  if (label === 'FAT12') return 'FAT12';
  if (label === 'FAT16') return 'FAT16';
  throw new UserError(
    `partition ${p.number} has FAT type 0x${p.mbrType.toString(16)} but no FAT file system: the boot partition is damaged or unformatted`,
  );
}

function describeTypes(partitions: DiskPartition[]): string {
  return partitions.map((p) => `p${p.number}=0x${p.mbrType.toString(16).padStart(2, '0')}`).join(', ');
}
