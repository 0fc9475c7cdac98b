/**
 * The card to flash, as the kernel describes it in /sys/class/block, and the reasons not to
 * write it: not a whole block device, a partition mounted or held, too small, not removable.
 */
import { access, constants, readdir, readFile, realpath, stat } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { UserError } from '../errors.js';

const SYS_BLOCK = '/sys/class/block';

export interface Target {
  path: string;
  /** The kernel's name: sdb, mmcblk0, loop3. */
  name: string;
  size: number;
  removable: boolean;
  /** The kernel's `ro`: a card whose write-protect (lock) switch is on, or a read-only reader. */
  readOnly: boolean;
  model: string;
  /** The kernel names of its partitions. */
  partitions: string[];
}

const sysText = (name: string, file: string) =>
  readFile(join(SYS_BLOCK, name, file), 'utf8').then(
    (text) => text.trim(),
    () => undefined,
  );

/** Linux's dev_t as "major:minor" (the split of glibc's gnu_dev_major and gnu_dev_minor). */
function majorMinor(rdev: number): string {
  const dev = BigInt(rdev);
  return `${((dev >> 8n) & 0xfffn) | ((dev >> 32n) & ~0xfffn)}:${(dev & 0xffn) | ((dev >> 12n) & ~0xffn)}`;
}

/** The block device at `path`, or a one-line refusal when it is none or not a whole disk. */
export async function describeTarget(path: string): Promise<Target> {
  const info = await stat(path).catch(() => undefined);
  if (!info)
    throw new UserError(`${path} does not exist; pass the card's whole device, such as /dev/sdX or /dev/mmcblkN (lsblk lists them)`);
  if (!info.isBlockDevice())
    throw new UserError(`${path} is not a block device; pass the card's whole device, such as /dev/sdX or /dev/mmcblkN (lsblk lists them)`);
  const name = basename(await realpath(`/sys/dev/block/${majorMinor(info.rdev)}`));
  if ((await sysText(name, 'partition')) !== undefined) {
    throw new UserError(`${path} is a partition (${name}); pass the whole device it belongs to, the image holds its own partition table`);
  }
  const entries = await readdir(join(SYS_BLOCK, name));
  const partitions: string[] = [];
  for (const entry of entries) if ((await sysText(entry, 'partition')) !== undefined && entry.startsWith(name)) partitions.push(entry);
  return {
    path,
    name,
    size: Number(await sysText(name, 'size')) * 512,
    removable: (await sysText(name, 'removable')) === '1',
    readOnly: (await sysText(name, 'ro')) === '1',
    model:
      [await sysText(name, 'device/vendor'), (await sysText(name, 'device/model')) ?? (await sysText(name, 'device/name'))]
        .filter(Boolean)
        .join(' ') || 'unknown model',
    partitions: partitions.sort(),
  };
}

/** The mount points of the device and its partitions, by major:minor in /proc/self/mountinfo. */
async function mountsOf(target: Target): Promise<string[]> {
  const numbers = new Map<string, string>();
  for (const name of [target.name, ...target.partitions]) {
    const dev = await sysText(name, 'dev');
    if (dev) numbers.set(dev, name);
  }
  const mountinfo = await readFile('/proc/self/mountinfo', 'utf8');
  return mountinfo.split('\n').flatMap((line) => {
    const fields = line.split(' ');
    const name = numbers.get(fields[2]);
    return name ? [`/dev/${name} on ${fields[4].replace(/\\040/g, ' ')}`] : [];
  });
}

/** What holds the device or a partition besides mounts: device-mapper, RAID, LVM. */
async function holdersOf(target: Target): Promise<string[]> {
  const held: string[] = [];
  for (const name of [target.name, ...target.partitions]) {
    const holders = await readdir(join(SYS_BLOCK, name, 'holders')).catch(() => []);
    held.push(...holders.map((holder) => `/dev/${name} by ${holder}`));
  }
  return held;
}

const GiB = 1024 ** 3;
export const formatSize = (bytes: number) => (bytes >= GiB ? `${(bytes / GiB).toFixed(1)} GiB` : `${(bytes / 1024 ** 2).toFixed(0)} MiB`);

/** What to do about a device that cannot be opened for writing; undefined for any other error. */
export function openRefusal(error: unknown, path: string): UserError | undefined {
  switch ((error as NodeJS.ErrnoException).code) {
    case 'EACCES':
      return new UserError(`permission denied on ${path}; run it with sudo`);
    // The kernel answers EPERM (or EROFS) for a write-protected block device.
    case 'EPERM':
    case 'EROFS':
      return writeProtected(path);
    default:
      return undefined;
  }
}

const writeProtected = (path: string) =>
  new UserError(
    `${path} is write-protected: the card's lock switch is on (or the reader is read-only); slide the switch away from "lock", insert the card again and retry`,
  );

/** Throws the first reason not to write `target` with an image of `imageSize` bytes. */
export async function refuseUnsafeTarget(target: Target, imageSize: number, options: { allowNonRemovable: boolean }): Promise<void> {
  // Before anything else: a user without the right to write gets the one fix that applies.
  const denied = await access(target.path, constants.W_OK).then(
    () => undefined,
    (error: unknown) => openRefusal(error, target.path),
  );
  if (denied) throw denied;
  if (target.readOnly) throw writeProtected(target.path);
  const mounts = await mountsOf(target);
  if (mounts.length > 0)
    throw new UserError(
      `${target.path} is mounted (${mounts.join(', ')}); unmount it first (sudo umount ...), or check that it is the card`,
    );
  const holders = await holdersOf(target);
  if (holders.length > 0)
    throw new UserError(`${target.path} is in use (${holders.join(', ')}); release it first, or check that it is the card`);
  if (target.size < imageSize) {
    throw new UserError(
      `${target.path} holds ${target.size} bytes (${formatSize(target.size)}), less than the image's ${imageSize} (${formatSize(imageSize)}); use a larger card`,
    );
  }
  if (!target.removable && !options.allowNonRemovable) {
    throw new UserError(
      `${target.path} (${target.model}, ${formatSize(target.size)}) is not a removable device, which a card usually is; check it is the card, then pass --allow-non-removable (some built-in card readers report non-removable)`,
    );
  }
}
