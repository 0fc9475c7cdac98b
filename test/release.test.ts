import { execFileSync } from 'node:child_process';
import { readFile, readdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { sha256File } from '../src/checksum.js';
import { buildImage } from './cli.js';
import { configWithFakeBundle } from './docker-bundle-fixture.js';
import { stockImage, tempDir } from './fixtures.js';
import { fakeBin } from './kit-helpers.js';

const hasBmaptool = (() => {
  try {
    execFileSync('bmaptool', ['--version'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
})();

/** SHA256SUMS in `out`, after `sha256sum -c` accepts it, as { file: sha256 } in its order. */
async function checkedSums(out: string): Promise<Record<string, string>> {
  execFileSync('sha256sum', ['-c', 'SHA256SUMS'], { cwd: out });
  return Object.fromEntries(
    (await readFile(join(out, 'SHA256SUMS'), 'utf8'))
      .split('\n')
      .filter(Boolean)
      .map((line) => line.split('  ').reverse()),
  );
}

/** `<name>.img.xz` holds exactly the image with `sha256`, and `<name>.bmap` maps its data blocks only and flashes it with bmaptool. */
async function expectReleaseFiles(out: string, name: string, sha256: string): Promise<void> {
  const xz = join(out, `${name}.img.xz`);
  expect(execFileSync('sh', ['-c', `xz -dc '${xz}' | sha256sum`], { encoding: 'utf8' }).split(' ')[0]).toBe(sha256);

  const bmap = await readFile(join(out, `${name}.bmap`), 'utf8');
  const mapped = Number(/<MappedBlocksCount> (\d+) </.exec(bmap)?.[1]);
  const total = Number(/<BlocksCount> (\d+) </.exec(bmap)?.[1]);
  expect(mapped).toBeGreaterThan(0);
  expect(mapped).toBeLessThan(total / 10);
  if (hasBmaptool) {
    // bmaptool verifies the bmap's own checksum and every range's while copying.
    const target = join(await tempDir(), 'flashed.img');
    execFileSync('bmaptool', ['copy', '--bmap', join(out, `${name}.bmap`), xz, target], { stdio: 'pipe' });
    expect(await sha256File(target)).toBe(sha256);
    await rm(target);
  }
}

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
    const sums = await checkedSums(out);
    expect(Object.keys(sums)).toEqual(['rel.bmap', 'rel.img', 'rel.img.xz']);
    await expectReleaseFiles(out, 'rel', sums['rel.img']);

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

describe('--release --fleet 2', () => {
  it('writes every board\'s image, checksum, xz and bmap, and one SHA256SUMS over all of them', async () => {
    const out = await tempDir();
    const run = await buildImage(['--input', await stockImage('stock'), '--out', out, '--name', 'rf', '--fleet', '2', '--release', '--config', await configWithFakeBundle(await tempDir())]);
    expect(run.stderr).not.toMatch(/internal error/);
    expect(run.code, run.stderr).toBe(0);
    const boards = ['rf-1', 'rf-2'];
    expect((await readdir(out)).sort()).toEqual(['SHA256SUMS', 'host', ...boards.flatMap((b) => [`${b}.bmap`, `${b}.img`, `${b}.img.sha256`, `${b}.img.xz`]), 'secrets']);
    const sums = await checkedSums(out);
    expect(Object.keys(sums)).toEqual(boards.flatMap((b) => [`${b}.bmap`, `${b}.img`, `${b}.img.xz`]));
    for (const board of boards) {
      execFileSync('sha256sum', ['-c', `${board}.img.sha256`], { cwd: out });
      await expectReleaseFiles(out, board, sums[`${board}.img`]);
    }
    expect(sums['rf-1.img']).not.toBe(sums['rf-2.img']);
  }, 400_000);

  it('leaves none of the boards\' files when the last board fails', async () => {
    const out = await tempDir();
    // An xz that takes board 1's image and fails on board 2's: board 1's finished files must go too.
    const xz = 'runs=$(cat "$XZ_RUNS" 2>/dev/null || echo 0); echo $((runs + 1)) >"$XZ_RUNS"; cat >/dev/null; [ "$runs" = 0 ] || { echo "injected failure" >&2; exit 1; }';
    const bin = await fakeBin({ xz });
    const env = { PATH: `${bin}:${process.env.PATH}`, XZ_RUNS: join(await tempDir(), 'runs') };
    const run = await buildImage(['--input', await stockImage('stock'), '--out', out, '--name', 'rf', '--fleet', '2', '--release', '--config', await configWithFakeBundle(await tempDir())], env);
    expect(run.code).not.toBe(0);
    expect(run.stderr).toMatch(/xz failed \(1\): injected failure/);
    // secrets/ outlives a failed build (it is reused, not made per build): nothing else may be left.
    expect(await readdir(out)).toEqual(['secrets']);
  });
});
