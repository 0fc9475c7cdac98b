import { createReadStream } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { isAbsolute, join, posix, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Operation, Partition } from '../engine/operations.js';
import type { ImageView, Step } from '../engine/step.js';
import { TEMPLATES_DIR } from '../engine/templates.js';
import { isUserError, UserError } from '../errors.js';
import type { FileMeta } from '../image/partition-fs.js';
import { type OverlayEntry, type OwnerMode, readModes, walkOverlay } from './overlay-tree.js';

/** The repository's overlays/: rootfs/ and boot/ are copied into the image, templates/ shadows templates/. */
export const OVERLAYS_DIR = fileURLToPath(new URL('../../overlays/', import.meta.url));

/** Files above this are streamed from the host instead of being read into memory. */
const STREAM_ABOVE = 1024 * 1024;
// FAT refuses these in names; we say so before FatFs answers FR_INVALID_NAME.
const FAT_FORBIDDEN = /[\x00-\x1f"*:<>?\\|]|[. ]$/;

const defaultOwnerMode = (entry: OverlayEntry): OwnerMode => ({
  mode: entry.type === 'file' && !entry.executable ? 0o644 : 0o755,
  uid: 0,
  gid: 0,
});

/** Whether the host file holds exactly `bytes`, read in chunks so a large file is never held twice. */
async function sameBytes(source: string, bytes: Buffer): Promise<boolean> {
  let offset = 0;
  for await (const chunk of createReadStream(source) as AsyncIterable<Buffer>) {
    if (offset + chunk.length > bytes.length || !chunk.equals(bytes.subarray(offset, offset + chunk.length))) return false;
    offset += chunk.length;
  }
  return offset === bytes.length;
}

async function copyFile(on: Partition, entry: OverlayEntry & { type: 'file' }, meta: FileMeta): Promise<Operation> {
  if (entry.size <= STREAM_ABOVE) return { op: 'write', on, path: entry.path, content: await readFile(entry.source), ...meta };
  const name = posix.basename(entry.path);
  return {
    op: 'stream',
    on,
    dir: posix.dirname(entry.path),
    source: { from: 'host-file', path: entry.source, name, size: entry.size, ...meta },
    bytes: entry.size,
  };
}

/**
 * The operations that make one partition hold the overlay, leaving out what is already there
 * (same bytes, mode, owner, link target): a rebuild plans nothing.
 */
async function planPartition(
  on: Partition,
  entries: OverlayEntry[],
  image: ImageView,
  modes: Map<string, OwnerMode>,
): Promise<Operation[]> {
  const operations: Operation[] = [];
  const seen = new Map<string, string>();
  for (const entry of entries) {
    if (on === 'boot') checkFatEntry(entry, seen);
    const existing = await image.lstat(on, entry.path);
    const wanted = modes.get(entry.path) ?? defaultOwnerMode(entry);
    // FAT keeps no owners or modes: the boot partition gets none.
    const meta: FileMeta = on === 'rootfs' ? wanted : {};
    const sameOwner = on === 'boot' || (existing?.uid === wanted.uid && existing.gid === wanted.gid);
    const sameMeta = sameOwner && (on === 'boot' || existing?.mode === wanted.mode);
    if (existing?.type === 'symlink' && entry.type === 'dir') {
      const target = (await image.readlink(on, entry.path)) ?? '';
      const real = posix.resolve(posix.dirname(entry.path), target);
      throw new UserError(
        `${entry.source}: ${entry.path} is a symlink in the image (-> ${target}) and overlays never write through symlinks: put these files under ${real} instead`,
      );
    }
    if (existing && existing.type !== entry.type && (existing.type === 'dir' || entry.type === 'dir')) {
      throw new UserError(
        `${entry.source} is a ${entry.type} but ${entry.path} in the image is a ${existing.type}: rename it in the overlay`,
      );
    }
    if (existing?.type === 'other') {
      throw new UserError(`${entry.path} in the image is a special file (device, fifo or socket): remove ${entry.source} from the overlay`);
    }
    switch (entry.type) {
      case 'dir':
        if (!existing) operations.push({ op: 'mkdir', on, path: entry.path, ...meta });
        else if (!sameMeta && modes.has(entry.path)) {
          throw new UserError(
            `${entry.path} already exists in the image as ${existing.mode.toString(8).padStart(4, '0')} ${existing.uid}:${existing.gid}, and overlays keep existing directories as they are: drop its line from the modes file`,
          );
        }
        break;
      case 'file': {
        const current =
          existing?.type === 'file' && existing.size === entry.size && sameMeta ? await image.read(on, entry.path) : undefined;
        if (!current || !(await sameBytes(entry.source, current))) operations.push(await copyFile(on, entry, meta));
        break;
      }
      case 'symlink':
        // Only on the rootfs (checkFatEntry refused them on boot). A symlink's own mode is always
        // 0777: only its owner and target count.
        if (existing?.type !== 'symlink' || !sameOwner || (await image.readlink(on, entry.path)) !== entry.target) {
          operations.push({ op: 'symlink', on: 'rootfs', path: entry.path, target: entry.target, uid: wanted.uid, gid: wanted.gid });
        }
        break;
    }
  }
  return operations;
}

/** FAT has no symlinks, reserves some characters, and ignores case, so two names may be one file. */
function checkFatEntry(entry: OverlayEntry, seen: Map<string, string>): void {
  if (entry.type === 'symlink') {
    throw new UserError(`${entry.source} is a symlink but the boot partition is FAT, which has none: put the file itself there`);
  }
  if (FAT_FORBIDDEN.test(posix.basename(entry.path))) {
    throw new UserError(
      `${entry.source}: FAT names cannot hold control characters or " * : < > ? \\ |, nor end in a dot or space: rename it`,
    );
  }
  const key = entry.path.toLowerCase();
  const other = seen.get(key);
  if (other) throw new UserError(`${entry.source} and ${other} are the same name on FAT, which ignores case: keep one`);
  seen.set(key, entry.source);
}

/** A file under <dir>/templates/ shadows nothing unless templates/ has the same path: most likely a typo. */
async function checkTemplateOverrides(dir: string): Promise<void> {
  const userDir = join(dir, 'templates');
  const known = new Set((await walkOverlay(TEMPLATES_DIR)).map((entry) => entry.path));
  for (const entry of await walkOverlay(userDir)) {
    if (entry.type !== 'dir' && !known.has(entry.path)) {
      throw new UserError(`${entry.source} overrides no template (templates${entry.path} does not exist): fix its path under ${userDir}`);
    }
  }
}

interface OverlayPlan {
  entries: number;
  operations: Operation[];
}

async function planOverlays(dir: string, image: ImageView): Promise<OverlayPlan> {
  await checkTemplateOverrides(dir);
  const rootfs = await walkOverlay(join(dir, 'rootfs'));
  const boot = await walkOverlay(join(dir, 'boot'));
  const modesFile = join(dir, 'rootfs.modes');
  const modes = await readModes(modesFile);
  const paths = new Set(rootfs.map((entry) => entry.path));
  for (const path of modes.keys()) {
    if (!paths.has(path))
      throw new UserError(`${modesFile} lists ${path}, which is not in ${join(dir, 'rootfs')}: remove the line or add the file`);
    if (rootfs.find((entry) => entry.path === path)?.type === 'symlink') {
      throw new UserError(`${modesFile} lists ${path}, a symlink, and symlinks have no mode of their own: remove the line`);
    }
  }
  return {
    entries: rootfs.length + boot.length,
    operations: [...(await planPartition('rootfs', rootfs, image, modes)), ...(await planPartition('boot', boot, image, new Map()))],
  };
}

/**
 * The user's own files, copied verbatim from `<dir>/rootfs/` and `<dir>/boot/` (rules in
 * docs/customizing.md). It runs after every feature step, so the user has the last word.
 */
/** A directory inside the repository by its relative path (overlays/rootfs), any other as it is. */
function shown(dir: string): string {
  const inRepo = relative(join(OVERLAYS_DIR, '..'), dir);
  return inRepo.startsWith('..') || isAbsolute(inRepo) ? dir : inRepo;
}

export function overlaysStep(dir: string): Step {
  return {
    name: 'overlays',
    summary: `copy the files under ${shown(join(dir, 'rootfs'))}/ and ${shown(join(dir, 'boot'))}/ into the image`,
    async plan({ image }) {
      return (await planOverlays(dir, image)).operations;
    },
    async applied(image) {
      try {
        const { entries, operations } = await planOverlays(dir, image);
        return entries > 0 && operations.length === 0;
      } catch (error) {
        // A broken overlay is a build problem; the image simply does not hold it.
        if (isUserError(error)) return false;
        throw error;
      }
    },
  };
}
