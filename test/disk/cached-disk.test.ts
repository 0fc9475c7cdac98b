import { closeSync, existsSync, openSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { CachedFileDisk } from '../../src/image/cached-disk.js';
import { skipWithout, tempDir } from '../support/images.js';

/** A small deterministic generator, so a failure replays the same operations. */
function random(seed: number) {
  return (n: number) => {
    seed = (seed * 1103515245 + 12345) & 0x7fffffff;
    // The high bits: the low ones of this generator repeat with short periods.
    return (seed >>> 12) % n;
  };
}

describe('CachedFileDisk (write-back cache under libext2fs)', () => {
  for (const maxDirty of [1 << 20, 64 << 20]) {
    it(`reads see earlier writes and the file matches after flush (dirty limit ${maxDirty >> 20} MiB)`, async () => {
      const path = join(await tempDir(), 'disk.bin');
      const size = 3 * 1024 * 1024 + 512;
      const initial = Buffer.alloc(size);
      for (let i = 0; i < size; i++) initial[i] = (i * 7) & 0xff;
      writeFileSync(path, initial);
      const expected = Buffer.from(initial);
      const fd = openSync(path, 'r+');
      const disk = new CachedFileDisk(fd, false, maxDirty);
      const next = random(42);
      for (let op = 0; op < 400; op++) {
        const offset = next(size - 70000);
        const length = 1 + next(70000);
        if (next(2) === 0) {
          const data = Buffer.alloc(length, op & 0xff);
          await disk.write(data, 0, length, offset);
          data.copy(expected, offset);
        } else {
          const got = Buffer.alloc(length);
          await disk.read(got, 0, length, offset);
          expect(got.equals(expected.subarray(offset, offset + length))).toBe(true);
        }
      }
      await disk.flush();
      closeSync(fd);
      expect(readFileSync(path).equals(expected)).toBe(true);
    });
  }

  // libext2fs reads whole blocks, the same few again and again: those are kept as they are in
  // the file, and must never be answered stale once written, written back or written partly.
  it('block reads of kept pages see every write, before and after write-back', async () => {
    const path = join(await tempDir(), 'disk.bin');
    const pages = 64;
    const initial = Buffer.alloc(pages * 4096);
    for (let i = 0; i < initial.length; i++) initial[i] = (i * 13) & 0xff;
    writeFileSync(path, initial);
    const expected = Buffer.from(initial);
    const fd = openSync(path, 'r+');
    // A dirty limit of 4 pages: write-backs happen all along.
    const disk = new CachedFileDisk(fd, false, 4 * 4096);
    const next = random(7);
    for (let op = 0; op < 2000; op++) {
      const page = next(pages);
      const kind = next(3);
      if (kind === 0) {
        const got = Buffer.alloc(4096);
        await disk.read(got, 0, 4096, page * 4096);
        expect(got.equals(expected.subarray(page * 4096, (page + 1) * 4096))).toBe(true);
      } else {
        // Whole pages and parts of pages, which keep the bytes around them.
        const inPage = kind === 1 ? 0 : next(4000);
        const length = kind === 1 ? 4096 : 1 + next(4096 - inPage);
        const data = Buffer.alloc(length, op & 0xff);
        await disk.write(data, 0, length, page * 4096 + inPage);
        data.copy(expected, page * 4096 + inPage);
      }
    }
    await disk.flush();
    closeSync(fd);
    expect(readFileSync(path).equals(expected)).toBe(true);
  });

  it('a read-only disk never writes the file', async () => {
    const path = join(await tempDir(), 'disk.bin');
    writeFileSync(path, Buffer.alloc(1 << 20, 1));
    const fd = openSync(path, 'r');
    const disk = new CachedFileDisk(fd, true);
    await disk.write(Buffer.alloc(4096, 9), 0, 4096, 8192);
    const got = Buffer.alloc(4096);
    await disk.read(got, 0, 4096, 8192);
    expect(got[0]).toBe(9);
    await disk.flush();
    closeSync(fd);
    expect(readFileSync(path).every((b) => b === 1)).toBe(true);
  });

  // /dev/full answers every write with ENOSPC, as a full disk does.
  const noDevFull = skipWithout({ '/dev/full': existsSync('/dev/full') });
  it.skipIf(noDevFull)('keeps the first failed write-back, which libext2fs only hears of as EIO', async () => {
    const fd = openSync('/dev/full', 'r+');
    try {
      const disk = new CachedFileDisk(fd, false);
      await disk.write(Buffer.alloc(4096, 9), 0, 4096, 0);
      await expect(disk.flush()).rejects.toMatchObject({ code: 'ENOSPC' });
      expect(disk.writeFailure).toMatchObject({ code: 'ENOSPC', syscall: 'write' });
    } finally {
      closeSync(fd);
    }
  });
});
