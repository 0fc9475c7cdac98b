import { execFileSync } from 'node:child_process';
import { readFile, readdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { sha256File } from '../src/checksum.js';
import { buildImage } from './cli.js';
import { configWithFakeBundle } from './docker-bundle-fixture.js';
import { stockImage, tempDir } from './fixtures.js';

const hasBmaptool = (() => {
  try {
    execFileSync('bmaptool', ['--version'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
})();

describe('--release', () => {
  it('writes .img.xz, .bmap and SHA256SUMS that bmaptool and sha256sum accept, reproducibly', async () => {
    const out = await tempDir();
    const input = await stockImage('stock');
    const env = { SOURCE_DATE_EPOCH: '1700000000' };
    const args = ['--input', input, '--out', out, '--name', 'rel', '--release', '--config', await configWithFakeBundle(await tempDir())];
    const first = await buildImage(args, env);
    expect(first.stderr).not.toMatch(/internal error/);
    expect(first.code).toBe(0);
    const files = await readdir(out);
    expect(files).toEqual(expect.arrayContaining(['SHA256SUMS', 'rel.bmap', 'rel.img', 'rel.img.sha256', 'rel.img.xz']));
    expect(files.filter((f) => f.endsWith('.tmp'))).toEqual([]);
    execFileSync('sha256sum', ['-c', 'SHA256SUMS'], { cwd: out });
    const sums = Object.fromEntries(
      (await readFile(join(out, 'SHA256SUMS'), 'utf8'))
        .split('\n')
        .filter(Boolean)
        .map((line) => line.split('  ').reverse()),
    );
    expect(Object.keys(sums)).toEqual(['rel.bmap', 'rel.img', 'rel.img.xz']);

    // The xz holds exactly the image.
    const unpacked = join(out, 'unpacked.img');
    execFileSync('sh', ['-c', `xz -dc '${join(out, 'rel.img.xz')}' > '${unpacked}'`]);
    expect(await sha256File(unpacked)).toBe(sums['rel.img']);
    await rm(unpacked);

    const bmap = await readFile(join(out, 'rel.bmap'), 'utf8');
    const mapped = Number(/<MappedBlocksCount> (\d+) </.exec(bmap)?.[1]);
    const total = Number(/<BlocksCount> (\d+) </.exec(bmap)?.[1]);
    expect(mapped).toBeGreaterThan(0);
    expect(mapped).toBeLessThan(total / 10);
    if (hasBmaptool) {
      // bmaptool verifies the bmap's own checksum and every range's while copying.
      const target = join(out, 'flashed.img');
      execFileSync('bmaptool', ['copy', '--bmap', join(out, 'rel.bmap'), join(out, 'rel.img.xz'), target], { stdio: 'pipe' });
      expect(await sha256File(target)).toBe(sums['rel.img']);
      await rm(target);
    }

    // Same inputs, same secrets, same SOURCE_DATE_EPOCH: byte-identical artifacts.
    const second = await buildImage(args, env);
    expect(second.code).toBe(0);
    execFileSync('sha256sum', ['-c', 'SHA256SUMS'], { cwd: out });
    expect(await readFile(join(out, 'SHA256SUMS'), 'utf8')).toBe(Object.entries(sums).map(([file, sum]) => `${sum}  ${file}\n`).join(''));
  }, 400_000);

  it('without SOURCE_DATE_EPOCH the clock shows: two builds differ', async () => {
    const out = await tempDir();
    const args = ['--input', await stockImage('stock'), '--out', out, '--name', 'clock', '--config', await configWithFakeBundle(await tempDir())];
    expect((await buildImage(args, { SOURCE_DATE_EPOCH: '' })).code).toBe(0);
    const first = await sha256File(join(out, 'clock.img'));
    await new Promise((resolve) => setTimeout(resolve, 1100));
    expect((await buildImage(args, { SOURCE_DATE_EPOCH: '' })).code).toBe(0);
    expect(await sha256File(join(out, 'clock.img'))).not.toBe(first);
  });
});
