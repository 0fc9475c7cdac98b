import { open } from 'node:fs/promises';
import { UserError } from '../errors.js';
import { locateBootFiles, rootPartuuidOf, rootUuidOf } from '../formats/boot-files.js';
import { readExt4Superblock } from './ext4-superblock.js';
import { withBootPartition } from './fat.js';
import { type ImageLayout, readLayout } from './layout.js';
import { rootfsDamaged } from './rootfs-limits.js';

/** The root the boot partition names: boot.ini's `root=UUID=`, or cmdline.txt's `root=PARTUUID=`. */
async function bootRoot(layout: ImageLayout): Promise<{ uuid?: string; partuuid?: { diskId: string; partition: number } }> {
  return withBootPartition(layout, async (fs) => {
    const files = locateBootFiles(await fs.readdir('/'));
    if (files?.cmdline !== undefined) return { partuuid: rootPartuuidOf((await fs.readFile(files.cmdline)).toString('latin1')) };
    if (files?.bootIni === undefined) return {};
    return { uuid: rootUuidOf((await fs.readFile(files.bootIni)).toString('latin1')) };
  });
}

/**
 * Opens a disk image for patching: finds the boot and root partitions (the root being the
 * one boot.ini or cmdline.txt boots) and refuses, before anything is copied or written, an image whose
 * root file system must be repaired first.
 */
export async function openImage(path: string): Promise<ImageLayout> {
  let layout = await readLayout(path);
  const { uuid, partuuid } = await bootRoot(layout);
  if (uuid && uuid !== layout.rootfs.uuid) layout = await readLayout(path, uuid);
  if (partuuid) {
    const name = `${partuuid.diskId.slice(2)}-${partuuid.partition.toString(16).padStart(2, '0')}`;
    if (partuuid.diskId !== layout.diskId) {
      throw new UserError(
        `cmdline.txt boots root=PARTUUID=${name} but the disk identifier of ${path} is ${layout.diskId}: the image would not boot; fix cmdline.txt or pass another image`,
      );
    }
    if (partuuid.partition !== layout.rootfs.number) layout = await readLayout(path, { partition: partuuid.partition });
  }
  if (!uuid && !partuuid && layout.ext4Count > 1) {
    throw new UserError(
      `${path} has ${layout.ext4Count} ext4 partitions and boot.ini names no root=UUID=: cannot tell which is the root file system`,
    );
  }
  const handle = await open(path, 'r');
  try {
    const sb = await readExt4Superblock(handle, layout.rootfs.offset);
    if (sb?.damaged) throw rootfsDamaged(layout, sb.damaged);
    const where = `the root file system (partition ${layout.rootfs.number} of ${path})`;
    if (sb && sb.unsupported.length > 0) {
      const quotaOnly = sb.unsupported.every((feature) => feature === 'quota' || feature === 'project');
      throw new UserError(
        `${where} uses the unsupported ext4 feature${sb.unsupported.length > 1 ? 's' : ''} ${sb.unsupported.join(', ')}: this tool cannot patch it and keep it consistent; ` +
          (quotaOnly
            ? `turn it off first (tune2fs -O ^${sb.unsupported.join(',^')} '${path}?offset=${layout.rootfs.offset}'), then build again`
            : 'use a stock image made without it'),
      );
    }
    if (sb && sb.blocksCount * sb.blockSize > layout.rootfs.size) {
      throw new UserError(
        `${where} is larger than its partition (${sb.blocksCount * sb.blockSize} bytes in ${layout.rootfs.size}): the file system or the partition table is wrong; ` +
          'shrink the file system (resize2fs) or grow the partition, or use a fresh stock image',
      );
    }
    if (sb?.needsRecovery || sb?.hasErrors) {
      const why = sb.needsRecovery ? 'its journal needs recovery (it was not cleanly unmounted)' : 'it is marked as having errors';
      throw new UserError(
        `the root file system (partition ${layout.rootfs.number} of ${path}) cannot be patched safely: ${why}; ` +
          `run e2fsck -fy on it first (e.g. e2fsck -fy '${path}?offset=${layout.rootfs.offset}'), then build again`,
      );
    }
  } finally {
    await handle.close();
  }
  return layout;
}
