/**
 * Reads a user's overlay tree (overlays/rootfs/, overlays/boot/) from the host, and the
 * owner-and-mode manifest beside it. Nothing here knows the image.
 */
import { lstat, readdir, readFile, readlink } from 'node:fs/promises';
import { join, posix } from 'node:path';
import { UserError } from '../errors.js';

/** One entry of an overlay tree; `path` is where it lands, absolute in the partition. */
export type OverlayEntry = { path: string; source: string } & (
  | { type: 'dir' }
  | { type: 'file'; size: number; executable: boolean }
  | { type: 'symlink'; target: string }
);

/** Git keeps empty directories with this placeholder; it is never copied. */
const PLACEHOLDER = '.keep';
const MAX_ID = 2 ** 32 - 2;

function kindOf(stat: import('node:fs').Stats): string {
  if (stat.isFIFO()) return 'named pipe (fifo)';
  if (stat.isSocket()) return 'socket';
  if (stat.isBlockDevice() || stat.isCharacterDevice()) return 'device node';
  return 'special file';
}

async function statIfExists(path: string) {
  try {
    return await lstat(path);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw error;
  }
}

/** A directory entry's name, refused in one line when it is not UTF-8. */
function utf8Name(dir: string, raw: Buffer): string {
  const name = raw.toString('utf8');
  // Node hands such a name over with U+FFFD in it: a path that does not exist, and no name in ext4 we could mean.
  if (!Buffer.from(name, 'utf8').equals(raw)) {
    throw new UserError(
      `${dir} holds a file whose name is not UTF-8 (bytes ${raw.toString('hex')}); rename it (mv, or convmv) and build again`,
    );
  }
  return name;
}

/**
 * Every entry under `root`, parents before children, names sorted so plans are stable. Symlinks
 * are entries of their own and never followed, so a link pointing anywhere is only data.
 * A missing root is an empty overlay.
 */
export async function walkOverlay(root: string): Promise<OverlayEntry[]> {
  const rootStat = await statIfExists(root);
  if (!rootStat) return [];
  if (!rootStat.isDirectory()) throw new UserError(`${root} must be a directory of files to copy into the image: remove it or make it one`);
  const entries: OverlayEntry[] = [];
  const visit = async (hostDir: string, imageDir: string): Promise<void> => {
    for (const name of (await readdir(hostDir, { encoding: 'buffer' })).map((raw) => utf8Name(hostDir, raw)).sort()) {
      if (name === PLACEHOLDER) continue;
      const source = join(hostDir, name);
      const path = posix.join(imageDir, name);
      const stat = await lstat(source);
      if (stat.isDirectory()) {
        entries.push({ type: 'dir', path, source });
        await visit(source, path);
      } else if (stat.isFile()) {
        entries.push({ type: 'file', path, source, size: stat.size, executable: (stat.mode & 0o111) !== 0 });
      } else if (stat.isSymbolicLink()) {
        entries.push({ type: 'symlink', path, source, target: await readlink(source) });
      } else {
        throw new UserError(`${source} is a ${kindOf(stat)}; overlays hold only files, directories and symlinks: remove it`);
      }
    }
  };
  await visit(root, '/');
  return entries;
}

export interface OwnerMode {
  mode: number;
  uid: number;
  gid: number;
}

/**
 * The manifest of exceptions to the default owner and mode, one `PATH MODE [UID:GID]` a line
 * (`#` starts a comment). An absent file has no exceptions.
 */
export async function readModes(file: string): Promise<Map<string, OwnerMode>> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return new Map();
    throw error;
  }
  const modes = new Map<string, OwnerMode>();
  text.split('\n').forEach((raw, index) => {
    const line = raw.replace(/#.*/, '').trim();
    if (line === '') return;
    const fail = (why: string) =>
      new UserError(`${file} line ${index + 1}: ${why}; write PATH MODE [UID:GID], e.g. /root/.ssh/authorized_keys 0600 0:0`);
    const [path, mode, owner = '0:0', ...rest] = line.split(/\s+/);
    if (rest.length > 0 || mode === undefined) throw fail(`expected 2 or 3 fields, found ${line.split(/\s+/).length}`);
    if (!path.startsWith('/') || path.endsWith('/') || posix.normalize(path) !== path || path.split('/').includes('..')) {
      throw fail(`${JSON.stringify(path)} is not an absolute, normalized path inside the image`);
    }
    if (!/^[0-7]{3,4}$/.test(mode)) throw fail(`${JSON.stringify(mode)} is not an octal mode`);
    const ids = /^(\d+):(\d+)$/.exec(owner);
    if (!ids) throw fail(`${JSON.stringify(owner)} is not a numeric UID:GID`);
    // ext4 stores 32-bit ids, and 2^32-1 is (uid_t)-1, which chown reads as "leave unchanged".
    if (Number(ids[1]) > MAX_ID || Number(ids[2]) > MAX_ID)
      throw fail(`${JSON.stringify(owner)} has an id above ${MAX_ID}, the largest an owner can be`);
    if (modes.has(path)) throw fail(`${path} is listed twice`);
    modes.set(path, { mode: parseInt(mode, 8), uid: Number(ids[1]), gid: Number(ids[2]) });
  });
  return modes;
}
