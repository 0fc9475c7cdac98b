import { createHash } from 'node:crypto';
import { type FileHandle, open } from 'node:fs/promises';
import { dataExtents } from './data-extents.js';

export type HashAlgorithm = 'md5' | 'sha256';

/** Large reads: a 4 GiB file of data is read in 512 calls. */
const CHUNK = 8 * 1024 * 1024;

/** A piece of a file: its bytes, and whether they are a hole's zeros (not read from the disk). */
export interface FileChunk {
  bytes: Buffer;
  hole: boolean;
}

/** Data pieces start and end on this: file systems' blocks, and the block map's (release.ts). */
const ALIGN = 4096;

/** The file cut into pieces of at most CHUNK bytes that are each all data or all hole. */
function pieces(size: number, extents: { start: number; end: number }[]): { position: number; length: number; hole: boolean }[] {
  const result: { position: number; length: number; hole: boolean }[] = [];
  const add = (from: number, to: number, hole: boolean) => {
    for (let position = from; position < to; position += CHUNK) result.push({ position, length: Math.min(CHUNK, to - position), hole });
  };
  let position = 0;
  for (const extent of extents) {
    const start = Math.max(Math.floor(extent.start / ALIGN) * ALIGN, position);
    const end = Math.min(Math.ceil(extent.end / ALIGN) * ALIGN, size);
    if (end <= start) continue;
    add(position, start, true);
    add(start, end, false);
    position = end;
  }
  add(position, size, true);
  return result;
}

async function readFully(handle: FileHandle, buffer: Buffer, length: number, position: number, path: string): Promise<Buffer> {
  for (let got = 0; got < length; ) {
    const { bytesRead } = await handle.read(buffer, got, length - got, position + got);
    if (bytesRead === 0) throw new Error(`short read at ${position + got} of ${path}`);
    got += bytesRead;
  }
  return buffer.subarray(0, length);
}

/**
 * The bytes of a file in order, as chunks of up to 8 MiB. Its holes (SEEK_HOLE, data-extents.ts)
 * come as one shared buffer of zeros, not read: reading a hole costs the kernel as much as
 * reading data (it fills pages with zeros), and a 4 GiB image is mostly hole. While the caller
 * works on one chunk (hashing it, say) the next data is already being read, on libuv's thread
 * pool. A chunk is only valid until the next one is asked for: its buffer is reused.
 */
export async function* fileChunks(path: string): AsyncGenerator<FileChunk> {
  const handle = await open(path, 'r');
  const buffers = [Buffer.allocUnsafe(CHUNK), Buffer.allocUnsafe(CHUNK)];
  let zeros: Buffer | undefined;
  let reading: Promise<Buffer> | undefined;
  try {
    const { size } = await handle.stat();
    const all = pieces(size, await dataExtents(path));
    let turn = 0;
    const readAfter = (index: number) => {
      let next = index + 1;
      while (next < all.length && all[next].hole) next += 1;
      if (next === all.length) return undefined;
      turn ^= 1;
      return readFully(handle, buffers[turn], all[next].length, all[next].position, path);
    };
    reading = readAfter(-1);
    for (const [index, piece] of all.entries()) {
      if (piece.hole) {
        zeros ??= Buffer.alloc(CHUNK);
        yield { bytes: zeros.subarray(0, piece.length), hole: true };
        continue;
      }
      const bytes = await reading!;
      reading = readAfter(index);
      yield { bytes, hole: false };
    }
  } finally {
    // A read still under way when the caller stops must end before its file is closed.
    await reading?.catch(() => {});
    await handle.close();
  }
}

/** Hex digests of a file, read once however many algorithms are asked for. */
export async function hashFile<A extends HashAlgorithm>(path: string, algorithms: readonly A[]): Promise<Record<A, string>> {
  const hashes = algorithms.map((algorithm) => createHash(algorithm));
  for await (const { bytes } of fileChunks(path)) {
    for (const hash of hashes) hash.update(bytes);
  }
  return Object.fromEntries(algorithms.map((algorithm, i) => [algorithm, hashes[i].digest('hex')])) as Record<A, string>;
}

export async function sha256File(path: string): Promise<string> {
  return (await hashFile(path, ['sha256'])).sha256;
}

export async function md5File(path: string): Promise<string> {
  return (await hashFile(path, ['md5'])).md5;
}
