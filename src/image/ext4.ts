import { open } from 'node:fs/promises';
import { posix } from 'node:path';
import * as ext2fs from 'ext2fs';
import { UserError, withPath } from '../errors.js';
import { CachedFileDisk } from './cached-disk.js';
import { InodeOwners } from './ext4-owners.js';
import { readExt4Superblock } from './ext4-superblock.js';
import type { ImageLayout } from './layout.js';
import {
  DEFAULT_DIR_MODE,
  DEFAULT_FILE_MODE,
  type EntryStat,
  type FileMeta,
  type PartitionFs,
  PartitionFsBase,
  PartitionFsError,
  rechunk,
  type ScopeOptions,
  toAsync,
} from './partition-fs.js';
import { rootfsDamaged, rootfsFull } from './rootfs-limits.js';

/*
 * The ext4 rootfs through libext2fs compiled to WASM (the `ext2fs` package). Its pitfalls,
 * measured here, are all handled in this module and nowhere else:
 * - writeFile ignores the mode (files come out 0666): we chmod after every write.
 * - appendFile truncates: we never call it; edits read the whole file and write it back.
 * - one write of 16 MiB or more kills the WASM instance: we write in chunks of at most 4 MiB.
 * - no recursive mkdir, and mkdir on an existing directory fails with a raw libext2fs
 *   error code instead of EEXIST: mkdirp walks the path and only creates what is missing.
 * - no utimes: new inodes carry the host clock (see docs/library-notes.md).
 * - chown and stat keep the low 16 bits of an id: ext4-owners.ts keeps the high ones.
 * - it mounts and writes a file system whose journal needs recovery, which would corrupt
 *   it: we read the superblock first and refuse.
 * - readFile always decodes to a string: we read through a file handle into a Buffer.
 * - its errors embed the call's raw arguments (whole buffers): we rethrow short ones.
 * - any error of the disk becomes EIO: the disk keeps the real one, and we rethrow that.
 * - its own errors come as raw libext2fs codes (errno 2133571400 is EXT2_ET_BLOCK_ALLOC_FAIL): we
 *   name the ones that mean "full" (ENOSPC) or "damaged" (EFSCORRUPTED), and say so in one line.
 * - readdir leaks WASM memory on every call, and the WASM heap cannot grow: a few hundred builds
 *   in one process (a fleet) died with Aborted(OOM). We read directories as files and parse them.
 * - a lookup in a directory whose blocks are garbage answers ENOENT: a missing path's directory
 *   is parsed, and garbage there is named as damage.
 */

export const MAX_WRITE = 4 * 1024 * 1024;
const S_IFMT = 0o170000;
const S_IFREG = 0o100000;
const S_IFDIR = 0o040000;
const S_IFLNK = 0o120000;

export class Ext4Error extends PartitionFsError {
  constructor(op: string, path: string, code: string) {
    super('ext4', op, path, code);
    this.name = 'Ext4Error';
  }
}

/** libext2fs' error codes (lib/ext2fs/ext2_err.et) are this base plus their index in its table. */
const EXT2_ET_BASE = 2133571328;
const EXT2_ET_DIR_EXISTS = 79;
/** DIR_NO_SPACE, BLOCK_ALLOC_FAIL, INODE_ALLOC_FAIL, DIR_NO_SPACE_FOR_CSUM. */
const EXT2_ET_NO_SPACE = new Set([38, 72, 73, 149]);
/**
 * What libext2fs finds in a damaged file system: bad magic, group descriptors, directories, inode
 * and block numbers, superblock, extent trees, checksums, extended attributes, garbage inodes.
 */
const EXT2_ET_DAMAGE = new Set([
  19, 24, 25, 26, 28, 30, 32, 35, 41, 42, 59, 60, 90, 94, 119, 120, 121, 146, 147, 148, 150, 151, 152, 156, 160, 161, 169, 174, 176, 177,
  178,
]);

function codeOf(error: unknown): string {
  const e = error as { code?: string; errno?: number };
  const index = (e.errno ?? 0) - EXT2_ET_BASE;
  if (index === EXT2_ET_DIR_EXISTS) return 'EEXIST';
  if (EXT2_ET_NO_SPACE.has(index)) return 'ENOSPC';
  if (EXT2_ET_DAMAGE.has(index)) return 'EFSCORRUPTED';
  return e.code && e.code !== 'UNKNOWN' ? e.code : `errno ${e.errno}`;
}

async function call<T>(op: string, path: string, fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (error) {
    throw new Ext4Error(op, path, codeOf(error));
  }
}

/**
 * The names in a directory's blocks, read linearly as the kernel's readdir does (leaf blocks, and
 * htree's root and index blocks, whose entries are empty); undefined when the blocks do not hold
 * directory entries.
 */
function directoryNames(data: Buffer, blockSize: number): string[] | undefined {
  const names: string[] = [];
  for (let block = 0; block < data.length; block += blockSize) {
    const end = Math.min(block + blockSize, data.length);
    for (let offset = block; offset < end; ) {
      if (offset + 8 > end) return undefined;
      const inode = data.readUInt32LE(offset);
      const recordLength = data.readUInt16LE(offset + 4);
      const nameLength = data[offset + 6];
      if (recordLength < 8 || recordLength % 4 !== 0 || offset + recordLength > end || 8 + nameLength > recordLength) return undefined;
      const name = data.toString('utf8', offset + 8, offset + 8 + nameLength);
      if (inode !== 0 && nameLength > 0 && name !== '.' && name !== '..') names.push(name);
      offset += recordLength;
    }
  }
  return names;
}

function typeOf(s: ext2fs.Ext2Stats): EntryStat['type'] {
  const fmt = s.mode & S_IFMT;
  return fmt === S_IFREG ? 'file' : fmt === S_IFDIR ? 'dir' : fmt === S_IFLNK ? 'symlink' : 'other';
}

class Ext4Fs extends PartitionFsBase {
  readonly kind = 'ext4' as const;
  /** Directories whose blocks parsed as directory entries. */
  private readonly soundDirs = new Set<string>();
  constructor(
    private readonly fs: ext2fs.Ext2Promises,
    readonly writable: boolean,
    private readonly blockSize: number,
    private readonly owners: InodeOwners,
  ) {
    super();
  }

  async lstat(path: string): Promise<EntryStat | undefined> {
    try {
      const s = await call('lstat', path, () => this.fs.lstat(path));
      const { uid, gid } = await this.owners.idsOf(s.ino, s);
      return { type: typeOf(s), mode: s.mode & 0o7777, uid, gid, size: s.size };
    } catch (error) {
      if (!(error instanceof Ext4Error && (error.code === 'ENOENT' || error.code === 'ENOTDIR'))) throw error;
      // Parsing the directory it would be in (the nearest one there, up the path) throws if that
      // directory is garbage. Once per directory: libext2fs writes only sound ones.
      const parent = posix.dirname(path);
      if (error.code === 'ENOENT' && path !== '/' && !this.soundDirs.has(parent) && (await this.lstat(parent))?.type === 'dir') {
        await this.readdir(parent);
        this.soundDirs.add(parent);
      }
      return undefined;
    }
  }

  async readdir(path: string): Promise<string[]> {
    const handle = await call('open', path, () => this.fs.open(path, 'r'));
    const { mode } = await handle.stat().finally(() => handle.close());
    if ((mode & S_IFMT) !== S_IFDIR) throw new Ext4Error('readdir', path, 'ENOTDIR');
    const names = directoryNames(await this.readFile(path), this.blockSize);
    if (!names) throw new Ext4Error('readdir', path, 'EFSCORRUPTED');
    return names;
  }

  async readFile(path: string): Promise<Buffer> {
    const handle = await call('open', path, () => this.fs.open(path, 'r'));
    try {
      const { size } = await handle.stat();
      const buffer = Buffer.alloc(size);
      for (let done = 0; done < size; ) {
        const length = Math.min(MAX_WRITE, size - done);
        const { bytesRead } = await call('read', path, () => handle.read(buffer, done, length, done));
        if (bytesRead === 0) break;
        done += bytesRead;
      }
      return buffer;
    } finally {
      await handle.close();
    }
  }

  readlink(path: string): Promise<string> {
    return call('readlink', path, () => this.fs.readlink(path));
  }

  async writeStream(path: string, source: AsyncIterable<Uint8Array> | Iterable<Uint8Array>, meta: FileMeta = {}): Promise<number> {
    const existing = await this.replaceable(path, 'file');
    const handle = await call('open', path, () => this.fs.open(path, 'w', DEFAULT_FILE_MODE));
    let position = 0;
    try {
      for await (const chunk of rechunk(toAsync(source), MAX_WRITE)) {
        await call('write', path, () => handle.write(chunk, 0, chunk.length, position));
        position += chunk.length;
      }
    } finally {
      await handle.close();
    }
    await this.setMeta(path, meta, existing ?? { mode: DEFAULT_FILE_MODE, uid: 0, gid: 0 });
    return position;
  }

  protected async makeDir(dir: string, meta: FileMeta): Promise<void> {
    await call('mkdir', dir, () => this.fs.mkdir(dir, DEFAULT_DIR_MODE));
    await this.setMeta(dir, meta, { mode: DEFAULT_DIR_MODE, uid: 0, gid: 0 });
  }

  protected notADirectory(dir: string, type: EntryStat['type']): Error {
    return new Ext4Error('mkdir', dir, type === 'symlink' ? 'is a symlink' : 'ENOTDIR');
  }

  async symlink(target: string, path: string, meta: FileMeta = {}): Promise<void> {
    await this.replaceable(path, 'symlink');
    await this.remove(path);
    await call('symlink', path, () => this.fs.symlink(target, path));
    if (meta.uid !== undefined || meta.gid !== undefined) await this.chown(path, { uid: meta.uid ?? 0, gid: meta.gid ?? 0 });
  }

  private async chown(path: string, ids: { uid: number; gid: number }): Promise<void> {
    await call('chown', path, () => this.fs.lchown(path, ids.uid, ids.gid));
    this.owners.set((await call('lstat', path, () => this.fs.lstat(path))).ino, ids);
  }

  protected async removeEntry(path: string, type: EntryStat['type']): Promise<void> {
    this.owners.forget((await call('lstat', path, () => this.fs.lstat(path))).ino);
    if (type === 'dir') await call('rmdir', path, () => this.fs.rmdir(path));
    else await call('unlink', path, () => this.fs.unlink(path));
  }

  /** Returns what is there now, refusing to replace a directory with a file or link. */
  private async replaceable(path: string, as: 'file' | 'symlink'): Promise<EntryStat | undefined> {
    const stat = await this.lstat(path);
    if (stat?.type === 'dir') throw new Ext4Error(as === 'file' ? 'write' : 'symlink', path, 'EISDIR');
    if (stat?.type === 'symlink' && as === 'file') {
      // Never write through a symlink: it may point outside what the caller meant to change.
      await call('unlink', path, () => this.fs.unlink(path));
      return undefined;
    }
    return stat;
  }

  private async setMeta(path: string, meta: FileMeta, fallback: { mode: number; uid: number; gid: number }): Promise<void> {
    await call('chmod', path, () => this.fs.chmod(path, meta.mode ?? fallback.mode));
    await this.chown(path, { uid: meta.uid ?? fallback.uid, gid: meta.gid ?? fallback.gid });
  }
}

/**
 * Mounts the image's ext4 rootfs for the duration of `fn`, always unmounting after,
 * even when `fn` throws. Refuses a file system that needs e2fsck first.
 */
export async function withRootfs<T>(layout: ImageLayout, fn: (fs: PartitionFs) => Promise<T>, options: ScopeOptions = {}): Promise<T> {
  const writable = options.writable ?? false;
  const handle = await open(layout.path, writable ? 'r+' : 'r');
  try {
    const sb = await readExt4Superblock(handle, layout.rootfs.offset);
    if (!sb) throw new UserError(`partition ${layout.rootfs.number} of ${layout.path} has no ext4 file system`);
    if (sb.damaged) throw rootfsDamaged(layout, sb.damaged);
    if (sb.needsRecovery || sb.hasErrors) {
      // openImage refuses such images with advice; this guards every other caller.
      throw new UserError(`the root file system of ${layout.path} needs e2fsck before it can be opened`);
    }
    const free = { bytes: sb.freeBlocks * sb.blockSize, inodes: sb.freeInodes };
    // Read-only, the disk keeps any write libext2fs makes (it touches the superblock on mount) in memory.
    const disk = new CachedFileDisk(handle.fd, !writable);
    try {
      const mounted = await ext2fs.mount(disk, layout.rootfs.offset).catch((error: unknown) => {
        throw disk.writeFailure ?? rootfsDamaged(layout, `libext2fs cannot open it (${codeOf(error)})`);
      });
      const owners = await InodeOwners.read(disk, layout.rootfs.offset);
      try {
        return await fn(new Ext4Fs(mounted.promises, writable, sb.blockSize, owners));
      } finally {
        await ext2fs.umount(mounted);
        if (writable) {
          await owners.flush();
          await disk.flush();
        }
      }
    } catch (error) {
      // Whatever libext2fs made of it (EIO), a failed write to the image is the cause.
      if (disk.writeFailure) throw withPath(disk.writeFailure, layout.path);
      if (error instanceof Ext4Error && error.code === 'ENOSPC') throw rootfsFull(layout, free, error.path);
      if (error instanceof Ext4Error && error.code === 'EFSCORRUPTED')
        throw rootfsDamaged(layout, `libext2fs cannot read ${error.path} (${error.op})`);
      throw withPath(error, layout.path);
    }
  } finally {
    await handle.close();
  }
}
