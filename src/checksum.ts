import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';

export type HashAlgorithm = 'md5' | 'sha256';

/** Hex digests of a file, streamed and read once however many algorithms are asked for. */
export async function hashFile<A extends HashAlgorithm>(
  path: string,
  algorithms: readonly A[],
): Promise<Record<A, string>> {
  const hashes = algorithms.map((algorithm) => createHash(algorithm));
  for await (const chunk of createReadStream(path, { highWaterMark: 1024 * 1024 })) {
    for (const hash of hashes) hash.update(chunk as Buffer);
  }
  return Object.fromEntries(algorithms.map((algorithm, i) => [algorithm, hashes[i].digest('hex')])) as Record<A, string>;
}

export async function sha256File(path: string): Promise<string> {
  return (await hashFile(path, ['sha256'])).sha256;
}

export async function md5File(path: string): Promise<string> {
  return (await hashFile(path, ['md5'])).md5;
}
