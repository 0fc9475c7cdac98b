import { createHash } from 'node:crypto';
import { open } from 'node:fs/promises';

export type HashAlgorithm = 'md5' | 'sha256';

/** Large reads: a 4 GiB image is read in 512 calls, holes included (they read as zeros). */
const CHUNK = 8 * 1024 * 1024;

/**
 * The bytes of a file in order, as chunks of up to 8 MiB. While the caller works on one chunk
 * (hashing it, say) the next one is already being read, on libuv's thread pool: reading and
 * hashing go on side by side instead of one after the other. A chunk is only valid until the
 * next one is asked for: its buffer is reused.
 */
export async function* fileChunks(path: string): AsyncGenerator<Buffer> {
  const handle = await open(path, 'r');
  const buffers = [Buffer.allocUnsafe(CHUNK), Buffer.allocUnsafe(CHUNK)];
  let reading: Promise<number> | undefined;
  try {
    const { size } = await handle.stat();
    const readInto = (buffer: Buffer, position: number) =>
      position < size ? handle.read(buffer, 0, Math.min(CHUNK, size - position), position).then(({ bytesRead }) => bytesRead) : undefined;
    reading = readInto(buffers[0], 0);
    for (let position = 0, turn = 0; reading; turn ^= 1) {
      const got = await reading;
      if (got === 0) throw new Error(`short read at ${position} of ${path}`);
      position += got;
      reading = readInto(buffers[turn ^ 1], position);
      yield buffers[turn].subarray(0, got);
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
  for await (const chunk of fileChunks(path)) {
    for (const hash of hashes) hash.update(chunk);
  }
  return Object.fromEntries(algorithms.map((algorithm, i) => [algorithm, hashes[i].digest('hex')])) as Record<A, string>;
}

export async function sha256File(path: string): Promise<string> {
  return (await hashFile(path, ['sha256'])).sha256;
}

export async function md5File(path: string): Promise<string> {
  return (await hashFile(path, ['md5'])).md5;
}
