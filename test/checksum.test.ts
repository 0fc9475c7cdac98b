import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
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
