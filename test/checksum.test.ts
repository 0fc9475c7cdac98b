import { execFileSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, open, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect, it } from 'vitest';
import { fileChunks, hashFile, md5File, sha256File } from '../src/checksum.js';
import { dataExtents } from '../src/data-extents.js';

const MiB = 1024 * 1024;
const sha256sum = (path: string) => execFileSync('sha256sum', [path], { encoding: 'utf8' }).split(' ')[0];

/** A sparse file of `size` bytes holding random data at `at` (offset and length each), holes elsewhere. */
async function sparseFile(path: string, size: number, at: [number, number][]): Promise<Buffer> {
  const data = Buffer.alloc(size);
  const handle = await open(path, 'w');
  for (const [offset, length] of at) {
    randomBytes(length).copy(data, offset);
    await handle.write(data, offset, length, offset);
  }
  await handle.truncate(size);
  await handle.close();
  return data;
}

it('hashes a file with one or several algorithms in one read', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'checksum-'));
  try {
    const data = randomBytes(3 * 1024 * 1024 + 7);
    const path = join(dir, 'data.bin');
    await writeFile(path, data);
    const sha256 = createHash('sha256').update(data).digest('hex');
    const md5 = createHash('md5').update(data).digest('hex');
    expect(await sha256File(path)).toBe(sha256);
    expect(await md5File(path)).toBe(md5);
    expect(await hashFile(path, ['md5', 'sha256'])).toEqual({ md5, sha256 });
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

it('hashes a sparse file of several read chunks, holes and a chunk boundary inside data included', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'checksum-'));
  try {
    const data = Buffer.alloc(17 * MiB + 5);
    for (const at of [0, 8 * MiB - 3000, 17 * MiB - 100]) randomBytes(4096).copy(data, at);
    const path = join(dir, 'sparse.bin');
    const handle = await open(path, 'w');
    for (const at of [0, 8 * MiB - 3000, 17 * MiB - 100]) await handle.write(data, at, Math.min(4096, data.length - at), at);
    await handle.truncate(data.length);
    await handle.close();
    expect(await sha256File(path)).toBe(createHash('sha256').update(data).digest('hex'));
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

it('refuses a missing file', async () => {
  await expect(sha256File(join(tmpdir(), 'checksum-no-such-file'))).rejects.toMatchObject({ code: 'ENOENT' });
});

it("gives sha256sum's answer for files with and without holes, and does not read the holes", async () => {
  const dir = await mkdtemp(join(tmpdir(), 'checksum-'));
  try {
    // Holes at the start and the end, data at odd offsets and across 8 MiB read chunks.
    const sparse = join(dir, 'sparse.img');
    const data = await sparseFile(sparse, 40 * MiB + 4097, [
      [3 * MiB + 1, 5],
      [8 * MiB - 70_001, 140_003],
      [17 * MiB + 4095, 9 * MiB + 3],
      [33 * MiB + 12_345, 1],
    ]);
    expect(await sha256File(sparse)).toBe(sha256sum(sparse));
    expect(await sha256File(sparse)).toBe(createHash('sha256').update(data).digest('hex'));
    const extents = await dataExtents(sparse);
    expect(extents[0].start).toBeGreaterThan(0);
    expect(extents.at(-1)!.end).toBeLessThan(data.length);
    let position = 0;
    let holes = 0;
    for await (const { bytes, hole } of fileChunks(sparse)) {
      expect(bytes.equals(data.subarray(position, position + bytes.length))).toBe(true);
      if (hole) {
        holes += bytes.length;
        expect(extents.some((e) => e.start < position + bytes.length && position < e.end)).toBe(false);
      }
      position += bytes.length;
    }
    expect(position).toBe(data.length);
    expect(holes).toBeGreaterThan(20 * MiB);

    // Data to the very end, its size not a multiple of a block; and a file with no holes at all.
    const tail = join(dir, 'tail.img');
    await sparseFile(tail, 9 * MiB + 3, [[9 * MiB - 10, 13]]);
    expect(await sha256File(tail)).toBe(sha256sum(tail));
    const full = join(dir, 'full.bin');
    await writeFile(full, randomBytes(8 * MiB + 1));
    expect(await sha256File(full)).toBe(sha256sum(full));
    const empty = join(dir, 'empty.bin');
    await writeFile(empty, '');
    expect(await sha256File(empty)).toBe(sha256sum(empty));
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
