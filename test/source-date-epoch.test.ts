import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { configWithFakeBundle } from './docker-bundle-fixture.js';
import { buildImage } from './support/cli.js';
import { debugfs } from './support/debugfs.js';
import { SMALL_SIZE_MIB, stockImage, tempDir } from './support/images.js';

const input = () => stockImage('stock', { sizeMiB: SMALL_SIZE_MIB });

describe('SOURCE_DATE_EPOCH', () => {
  it.each([
    ['0', 'FAT would store 2098'],
    ['315532799', 'one second before 1980'],
    ['2147483648', '2^31: ext4 wraps to 1901'],
    ['4294967296', '2^32'],
    ['1700000000.5', 'not whole'],
    ['1e9', 'not plain digits'],
    ['-1', 'negative'],
  ])('%s (%s): one line naming it, nothing written', async (value) => {
    const out = join(await tempDir(), 'out');
    const run = await buildImage(['--input', await input(), '--out', out, '--name', 'epoch'], { SOURCE_DATE_EPOCH: value });
    expect(run.code).not.toBe(0);
    expect(run.stderr).toMatch(
      /^error: SOURCE_DATE_EPOCH ".*" is not a whole number of seconds from 315532800 \(1980-01-01, .*\) to 2147483647 \(2038-01-19, .*\); set it to one, .* or unset it\n$/,
    );
    await expect(readdir(out)).rejects.toThrow(/ENOENT/);
  });

  it('the last second ext4 and FAT both store builds, and the image carries that time', async () => {
    const out = await tempDir();
    const args = ['--input', await input(), '--out', out, '--name', 'late', '--config', await configWithFakeBundle(await tempDir())];
    const run = await buildImage(args, { SOURCE_DATE_EPOCH: '2147483647' });
    expect(run.stderr).not.toMatch(/error/);
    expect(run.code).toBe(0);
    // Written by this build, so stamped with the pinned clock, not wrapped to 1901.
    expect((await debugfs(join(out, 'late.img'), 'stat /etc/hostname')).stdout).toMatch(/mtime: 0x7fffffff\b/);
  });
});
