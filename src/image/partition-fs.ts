/**
 * What the applier and the steps see of a partition, whatever its file system.
 * Paths are absolute inside the partition ("/etc/hostname"). Operations act on the
 * path itself and never follow a final symlink: writing over a symlink replaces it.
 */
export interface FileMeta {
  mode?: number;
  uid?: number;
  gid?: number;
}

export type EntryType = 'file' | 'dir' | 'symlink' | 'other';

export interface EntryStat {
  type: EntryType;
  /** Permission bits only (0o7777). */
  mode: number;
  uid: number;
  gid: number;
  size: number;
}

export interface PartitionFs {
  readonly kind: 'fat' | 'ext4';
  readonly writable: boolean;
  readFile(path: string): Promise<Buffer>;
  /** undefined when the path does not exist. */
  lstat(path: string): Promise<EntryStat | undefined>;
  readdir(path: string): Promise<string[]>;
  readlink(path: string): Promise<string>;
  writeFile(path: string, data: Buffer | string, meta?: FileMeta): Promise<void>;
  /** Streams a file in; returns the number of bytes written. */
  writeStream(path: string, source: AsyncIterable<Uint8Array>, meta?: FileMeta): Promise<number>;
  /** Creates the directory and its missing parents; existing directories are left as they are. */
  mkdirp(path: string, meta?: FileMeta): Promise<void>;
  symlink(target: string, path: string, meta?: FileMeta): Promise<void>;
  /** Removes a file, symlink or empty directory; a missing path is not an error. */
  remove(path: string): Promise<void>;
}

export const DEFAULT_FILE_MODE = 0o644;
export const DEFAULT_DIR_MODE = 0o755;

export function parentDirs(path: string): string[] {
  const parts = path.split('/').filter(Boolean);
  return parts.slice(0, -1).map((_, i) => `/${parts.slice(0, i + 1).join('/')}`);
}

/** A piece at least this large is written as it comes: joining it to others would cost a copy of it. */
const WHOLE_PIECE = 256 * 1024;

/**
 * Re-chunks a byte stream into pieces of at most `max` bytes: a larger piece is cut, a piece of
 * WHOLE_PIECE or more goes on as it is, and runs of small ones are joined in one buffer, reused from
 * chunk to chunk (a stream of small pieces would otherwise cost a write call each, or its size in
 * garbage): a chunk is only valid until the next one is asked for, which is how the file systems'
 * writers use them (they copy it in).
 */
export async function* rechunk(source: AsyncIterable<Uint8Array>, max: number): AsyncGenerator<Buffer> {
  let pending: Buffer[] = [];
  let pendingBytes = 0;
  let joined: Buffer | undefined;
  const emit = () => {
    let chunk = pending[0];
    if (pending.length > 1) {
      joined ??= Buffer.allocUnsafe(max);
      let at = 0;
      for (const piece of pending) at += piece.copy(joined, at);
      chunk = joined.subarray(0, at);
    }
    pending = [];
    pendingBytes = 0;
    return chunk;
  };
  for await (const piece of source) {
    let chunk = Buffer.from(piece.buffer, piece.byteOffset, piece.byteLength);
    if (chunk.length >= WHOLE_PIECE) {
      if (pendingBytes > 0) yield emit();
      for (let at = 0; at < chunk.length; at += max) yield chunk.subarray(at, at + max);
      continue;
    }
    while (chunk.length > 0) {
      const take = Math.min(chunk.length, max - pendingBytes);
      pending.push(chunk.subarray(0, take));
      pendingBytes += take;
      chunk = chunk.subarray(take);
      if (pendingBytes === max) yield emit();
    }
  }
  if (pendingBytes > 0) yield emit();
}

export interface ScopeOptions {
  writable?: boolean;
}

/** A failed call on a partition's file system, naming the call, the path and the library's code. */
export class PartitionFsError extends Error {
  constructor(
    readonly fs: string,
    readonly op: string,
    readonly path: string,
    readonly code: string,
  ) {
    super(`${fs} ${op} ${path}: ${code}`);
  }
}

export async function* toAsync(source: AsyncIterable<Uint8Array> | Iterable<Uint8Array>): AsyncGenerator<Uint8Array> {
  yield* source;
}

/**
 * What every adapter does the same way on top of its library's primitives: whole-file writes as
 * one-chunk streams, `mkdir -p` by walking the path, removal of whatever type is there.
 */
export abstract class PartitionFsBase implements PartitionFs {
  abstract readonly kind: 'fat' | 'ext4';
  abstract readonly writable: boolean;
  abstract readFile(path: string): Promise<Buffer>;
  abstract lstat(path: string): Promise<EntryStat | undefined>;
  abstract readdir(path: string): Promise<string[]>;
  abstract readlink(path: string): Promise<string>;
  abstract writeStream(path: string, source: AsyncIterable<Uint8Array> | Iterable<Uint8Array>, meta?: FileMeta): Promise<number>;
  abstract symlink(target: string, path: string, meta?: FileMeta): Promise<void>;
  /** Creates one directory whose parent exists; `meta` is the caller's for the leaf, {} for a parent. */
  protected abstract makeDir(path: string, meta: FileMeta): Promise<void>;
  /** Removes an existing entry of the given type. */
  protected abstract removeEntry(path: string, type: EntryStat['type']): Promise<void>;
  /** The error for a non-directory in the way of mkdirp. */
  protected abstract notADirectory(path: string, type: EntryStat['type']): Error;

  async writeFile(path: string, data: Buffer | string, meta: FileMeta = {}): Promise<void> {
    await this.writeStream(path, [typeof data === 'string' ? Buffer.from(data) : data], meta);
  }

  async mkdirp(path: string, meta: FileMeta = {}): Promise<void> {
    for (const dir of [...parentDirs(path), path]) {
      const stat = await this.lstat(dir);
      if (stat?.type === 'dir') continue;
      if (stat) throw this.notADirectory(dir, stat.type);
      // Parents we create get the defaults; only the leaf takes the caller's owner and mode.
      await this.makeDir(dir, dir === path ? meta : {});
    }
  }

  async remove(path: string): Promise<void> {
    const stat = await this.lstat(path);
    if (stat) await this.removeEntry(path, stat.type);
  }
}
