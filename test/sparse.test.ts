import { randomBytes } from 'node:crypto';
import { mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createSparseWriteStream } from '../src/image/sparse.js';

const KiB = 1024;
const MiB = 1024 * KiB;

/** Splits a buffer into chunks of awkward sizes so blocks straddle chunk boundaries. */
function* chunksOf(data: Buffer, sizes: number[]) {
  for (let offset = 0, i = 0; offset < data.length; i++) {
    const size = sizes[i % sizes.length];
    yield data.subarray(offset, offset + size);
    offset += size;
  }
}

describe('createSparseWriteStream', () => {
  let dir: string;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'sparse-'));
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('writes identical content, leaves zero blocks as holes, and extends over trailing zeros', async () => {
    const data = Buffer.alloc(4 * MiB + 1000);
    randomBytes(100 * KiB).copy(data, 10 * KiB); // straddles the first two 64 KiB blocks
    randomBytes(1).copy(data, 2 * MiB + 5); // one byte keeps its whole block
    const path = join(dir, 'out.img');
    await pipeline(Readable.from(chunksOf(data, [7000, 65536, 100_000, 3])), createSparseWriteStream(path));

    expect((await readFile(path)).equals(data)).toBe(true);
    const stats = await stat(path);
    expect(stats.size).toBe(data.length);
    expect(stats.blocks * 512).toBeLessThanOrEqual(256 * KiB);
  });

  it('writes data that ends in a partial non-zero block', async () => {
    const data = Buffer.concat([Buffer.alloc(MiB), randomBytes(1234)]);
    const path = join(dir, 'tail.img');
    await pipeline(Readable.from(chunksOf(data, [MiB + 1234])), createSparseWriteStream(path));
    expect((await readFile(path)).equals(data)).toBe(true);
  });
});
