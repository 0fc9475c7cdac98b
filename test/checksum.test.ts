import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, open, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect, it } from 'vitest';
import { hashFile, md5File, sha256File } from '../src/checksum.js';

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
    const MiB = 1024 * 1024;
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
