import { execFileSync, spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { sha256File } from '../../src/checksum.js';
import { UserError } from '../../src/errors.js';
import { MAX_WRITE, withRootfs } from '../../src/image/ext4.js';
import { readLayout } from '../../src/image/layout.js';
import { openImage } from '../../src/image/open.js';
import { debugfsStat } from '../support/debugfs.js';
import { e2fsckClean } from '../support/fsck.js';
import { copyOfStockImage, SMALL_SIZE_MIB, stockImage, tempDir } from '../support/images.js';
import { sha256 as sha } from '../support/sha256.js';

/** debugfs's own view of a file's bytes, to check what libext2fs wrote. */
function debugfsDump(img: string, offset: number, path: string): Buffer {
  const dir = execFileSync('mktemp', ['-d']).toString().trim();
  const out = join(dir, 'dump');
  execFileSync('debugfs', ['-R', `dump ${path} ${out}`, `${img}?offset=${offset}`], { stdio: 'ignore' });
  return execFileSync('cat', [out], { maxBuffer: 64 << 20 });
}

describe('ext4 rootfs access (ext2fs pitfalls wrapped once)', async () => {
  for (const variant of ['stock', 'legacy-ext4'] as const) {
    it(`writes files with the mode and owner asked for, not 0666 (${variant})`, async () => {
      const img = await copyOfStockImage(variant, await tempDir());
      const layout = await openImage(img);
      await withRootfs(
        layout,
        async (fs) => {
          await fs.writeFile('/usr/local/bin/tool', '#!/bin/sh\n', { mode: 0o755 });
          await fs.writeFile('/etc/secret', 'x', { mode: 0o600, uid: 1000, gid: 42 });
          await fs.writeFile('/etc/plain', 'y');
        },
        { writable: true },
      );
      expect(await debugfsStat(img, '/usr/local/bin/tool')).toMatchObject({ mode: 0o755, uid: 0, gid: 0, type: 'regular' });
      expect(await debugfsStat(img, '/etc/secret')).toMatchObject({ mode: 0o600, uid: 1000, gid: 42 });
      expect(await debugfsStat(img, '/etc/plain')).toMatchObject({ mode: 0o644 });
      expect((await e2fsckClean(img)).ok).toBe(true);
    });
  }

  it('writes a file larger than 16 MiB in one call (chunked below the WASM limit) and reads it back', async () => {
    const img = await copyOfStockImage('stock', await tempDir());
    const layout = await openImage(img);
    const big = Buffer.alloc(20 * 1024 * 1024 + 123);
    for (let i = 0; i < big.length; i += 4096) big.writeUInt32LE(i, i);
    expect(big.length).toBeGreaterThan(4 * MAX_WRITE);
    const readBack = await withRootfs(
      layout,
      async (fs) => {
        await fs.writeFile('/var/big.bin', big);
        return fs.readFile('/var/big.bin');
      },
      { writable: true },
    );
    expect(sha(readBack)).toBe(sha(big));
    expect(sha(debugfsDump(img, layout.rootfs.offset, '/var/big.bin'))).toBe(sha(big));
    expect((await e2fsckClean(img)).ok).toBe(true);
  });

  it('mkdirp creates missing parents, accepts existing directories and refuses a file in the way', async () => {
    const img = await copyOfStockImage('stock', await tempDir());
    const layout = await openImage(img);
    await withRootfs(
      layout,
      async (fs) => {
        await fs.mkdirp('/etc/a/b/c', { mode: 0o700 });
        await fs.mkdirp('/etc/a/b/c');
        await fs.mkdirp('/etc');
        await expect(fs.mkdirp('/etc/hostname/sub')).rejects.toThrow(/ext4 mkdir \/etc\/hostname/);
      },
      { writable: true },
    );
    expect(await debugfsStat(img, '/etc/a/b/c')).toMatchObject({ type: 'directory', mode: 0o700 });
    expect(await debugfsStat(img, '/etc/a/b')).toMatchObject({ type: 'directory', mode: 0o755 });
    expect((await e2fsckClean(img)).ok).toBe(true);
  });

  it('writing over a symlink replaces the link and leaves its target alone', async () => {
    const img = await copyOfStockImage('stock', await tempDir());
    const layout = await openImage(img);
    await withRootfs(
      layout,
      async (fs) => {
        await fs.symlink('/etc/hostname', '/etc/link');
        await fs.writeFile('/etc/link', 'replaced\n');
        expect((await fs.readFile('/etc/hostname')).toString()).toBe('odroid\n');
        expect((await fs.lstat('/etc/link'))?.type).toBe('file');
      },
      { writable: true },
    );
    expect((await e2fsckClean(img)).ok).toBe(true);
  });

  it('editing keeps the edited file exactly as rewritten, without appendFile truncation surprises', async () => {
    const img = await copyOfStockImage('stock', await tempDir());
    const layout = await openImage(img);
    await withRootfs(
      layout,
      async (fs) => {
        const before = (await fs.readFile('/etc/fstab')).toString();
        await fs.writeFile('/etc/fstab', `${before}tmpfs /tmp tmpfs defaults 0 0\n`);
        expect((await fs.readFile('/etc/fstab')).toString()).toBe(`${before}tmpfs /tmp tmpfs defaults 0 0\n`);
      },
      { writable: true },
    );
  });

  it('refuses a file system whose journal needs recovery, and leaves the image untouched', async () => {
    const img = await copyOfStockImage('dirty-journal', await tempDir());
    const before = await sha256File(img);
    await expect(openImage(img)).rejects.toThrow(UserError);
    await expect(openImage(img)).rejects.toThrow(/journal needs recovery.*e2fsck/);
    const layout = await readLayout(img);
    await expect(withRootfs(layout, async () => undefined, { writable: true })).rejects.toThrow(/needs e2fsck/);
    expect(await sha256File(img)).toBe(before);
  });

  it('stores owners above 65535 whole, not their low 16 bits (the binding alone made 65536:70000 into 0:4464)', async () => {
    const img = await copyOfStockImage('stock', await tempDir());
    await withRootfs(await openImage(img), (fs) => fs.writeFile('/etc/owned', 'x', { uid: 65536, gid: 70000 }), { writable: true });
    expect(await debugfsStat(img, '/etc/owned')).toMatchObject({ uid: 65536, gid: 70000 });
    expect((await e2fsckClean(img)).ok).toBe(true);
  });

  it('unmounts even when the callback throws, leaving a clean file system', async () => {
    const img = await copyOfStockImage('stock', await tempDir());
    const layout = await openImage(img);
    await expect(
      withRootfs(
        layout,
        async (fs) => {
          await fs.writeFile('/etc/half', 'written before the failure');
          throw new Error('step failed');
        },
        { writable: true },
      ),
    ).rejects.toThrow('step failed');
    expect((await e2fsckClean(img)).ok).toBe(true);
    const text = await withRootfs(layout, async (fs) => (await fs.readFile('/etc/half')).toString());
    expect(text).toBe('written before the failure');
  });

  it('a read-only scope never writes the image', async () => {
    const img = await stockImage('stock');
    const before = await sha256File(img);
    const layout = await openImage(img);
    await withRootfs(layout, async (fs) => {
      expect((await fs.readFile('/etc/hostname')).toString()).toBe('odroid\n');
    });
    expect(await sha256File(img)).toBe(before);
  });

  it('a full root file system is one line saying so and what to do, never a raw libext2fs code', async () => {
    const dir = await tempDir();
    const img = join(dir, 'small.img');
    execFileSync('cp', ['--sparse=always', await stockImage('stock', { sizeMiB: SMALL_SIZE_MIB }), img]);
    const layout = await openImage(img);
    // About 25 MiB are free.
    const error = await withRootfs(layout, (fs) => fs.writeFile('/var/too-big.bin', Buffer.alloc(200 * 1024 * 1024, 1)), {
      writable: true,
    }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(UserError);
    expect((error as Error).message).toMatch(
      /^the root file system \(partition 2 of .*\) had \d+\.\d MiB and \d+ inodes free and this build needs more \(it ran out writing \/var\/too-big\.bin\); grow the image and its root partition first \(docs\/rootfs-space\.md/,
    );
  });

  it("lists a large, hash-indexed directory as debugfs does, and any number of times (the binding's readdir leaked its fixed WASM heap)", async () => {
    const dir = await tempDir();
    const img = await copyOfStockImage('stock', dir);
    const device = `${img}?offset=${(await openImage(img)).rootfs.offset}`;
    const commands = join(dir, 'commands');
    const names = Array.from({ length: 3000 }, (_, i) => `file-${i}-${'x'.repeat(i % 40)}`);
    execFileSync('sh', [
      '-c',
      `{ echo 'mkdir /many'; for n in "$@"; do echo "write /dev/null /many/$n"; done; } > '${commands}'`,
      'sh',
      ...names,
    ]);
    execFileSync('debugfs', ['-w', '-f', commands, device], { stdio: 'ignore' });
    // e2fsck -D indexes the directory (htree): its blocks then hold index nodes among the entries.
    spawnSync('e2fsck', ['-fyD', device]);
    expect(execFileSync('debugfs', ['-R', 'htree /many', device], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] })).toMatch(
      /Root node dump/,
    );
    const listed = await withRootfs(await openImage(img), async (fs) => {
      for (let i = 0; i < 2000; i += 1) await fs.readdir('/etc');
      return fs.readdir('/many');
    });
    expect(listed.sort()).toEqual([...names].sort());
  });
});
