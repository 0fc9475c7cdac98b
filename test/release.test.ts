import { execFileSync } from 'node:child_process';
import { readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { sha256File } from '../src/checksum.js';
import { UserError } from '../src/errors.js';
import { scanImage } from '../src/output/release.js';
import { configWithFakeBundle } from './docker-bundle-fixture.js';
import { fakeBin } from './kit-helpers.js';
import { buildImage, type RunResult } from './support/cli.js';
import { SMALL_SIZE_MIB, stockImage, tempDir } from './support/images.js';

// A release reads every byte of the image (sha256, bmap, xz), holes included: a small disk with
// the stock content keeps these builds quick without changing what they prove.
const releaseInput = () => stockImage('stock', { sizeMiB: SMALL_SIZE_MIB });

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
  // bmaptool verifies the bmap's own checksum and every range's while copying.
  const target = join(await tempDir(), 'flashed.img');
  execFileSync('bmaptool', ['copy', '--bmap', join(out, `${name}.bmap`), xz, target], { stdio: 'pipe' });
  expect(await sha256File(target)).toBe(sha256);
  await rm(target);
}

/** Every file under `out` with its sha256, to tell whether a build changed anything there. */
const contentsOf = (out: string) =>
  execFileSync('sh', ['-c', 'find . -type f -exec sha256sum {} + | sort -k 2'], { cwd: out, encoding: 'utf8' });

/** A bin directory whose xz is the stand-in `script`, ahead of the rest of PATH. */
async function withXz(script: string): Promise<NodeJS.ProcessEnv> {
  return { PATH: `${await fakeBin({ xz: script })}:${process.env.PATH}` };
}

const OUT_OF_SPACE = 'cat >/dev/null; echo "xz: (stdout): Write error: No space left on device" >&2; exit 1';

describe('--release', () => {
  it('writes .img.xz, .bmap and SHA256SUMS that bmaptool and sha256sum accept, reproducibly', async () => {
    const out = await tempDir();
    const input = await releaseInput();
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
    expect(await readFile(join(out, 'SHA256SUMS'), 'utf8')).toBe(
      Object.entries(sums)
        .map(([file, sum]) => `${sum}  ${file}\n`)
        .join(''),
    );
  });

  it('without SOURCE_DATE_EPOCH the clock shows: two builds differ', async () => {
    const out = await tempDir();
    const args = [
      '--input',
      await releaseInput(),
      '--out',
      out,
      '--name',
      'clock',
      '--config',
      await configWithFakeBundle(await tempDir()),
    ];
    expect((await buildImage(args, { SOURCE_DATE_EPOCH: '' })).code).toBe(0);
    const first = await sha256File(join(out, 'clock.img'));
    await new Promise((resolve) => setTimeout(resolve, 1100));
    expect((await buildImage(args, { SOURCE_DATE_EPOCH: '' })).code).toBe(0);
    expect(await sha256File(join(out, 'clock.img'))).not.toBe(first);
  });
});

describe('--release --fleet 2, then builds into its --out', () => {
  // One fleet release, checked as it is; then single builds of its boards, each seeing what the one before left.
  let out: string;
  let config: string;
  let run: RunResult;
  const build = async (name: string, options: string[] = [], env?: NodeJS.ProcessEnv) =>
    buildImage(['--input', await releaseInput(), '--out', out, '--name', name, '--config', config, ...options], env);
  beforeAll(async () => {
    out = await tempDir();
    config = await configWithFakeBundle(await tempDir());
    run = await build('st', ['--fleet', '2', '--release']);
  });

  it("writes every board's image, checksum, xz and bmap, and one SHA256SUMS over all of them", async () => {
    expect(run.stderr).not.toMatch(/internal error/);
    expect(run.code, run.stderr).toBe(0);
    const boards = ['st-1', 'st-2'];
    expect((await readdir(out)).sort()).toEqual([
      'SHA256SUMS',
      'host',
      'secrets',
      ...boards.flatMap((b) => [`${b}.bmap`, `${b}.img`, `${b}.img.sha256`, `${b}.img.xz`]),
    ]);
    const sums = await checkedSums(out);
    expect(Object.keys(sums)).toEqual(boards.flatMap((b) => [`${b}.bmap`, `${b}.img`, `${b}.img.xz`]));
    for (const board of boards) {
      execFileSync('sha256sum', ['-c', `${board}.img.sha256`], { cwd: out });
      await expectReleaseFiles(out, board, sums[`${board}.img`]);
    }
    expect(sums['st-1.img']).not.toBe(sums['st-2.img']);
  });

  it("leaves none of the boards' files when the last board fails", async () => {
    const failed = await tempDir();
    // An xz that takes board 1's image and fails on board 2's: board 1's finished files must go too.
    const xz =
      'runs=$(cat "$XZ_RUNS" 2>/dev/null || echo 0); echo $((runs + 1)) >"$XZ_RUNS"; cat >/dev/null; [ "$runs" = 0 ] || { echo "injected failure" >&2; exit 1; }';
    const env = { ...(await withXz(xz)), XZ_RUNS: join(await tempDir(), 'runs') };
    const args = ['--input', await releaseInput(), '--out', failed, '--name', 'rf', '--fleet', '2', '--release', '--config', config];
    const run = await buildImage(args, env);
    expect(run.code).not.toBe(0);
    expect(run.stderr).toMatch(/^error: xz failed \(exit status 1\): injected failure; /m);
    expect(run.stderr).not.toMatch(/internal error/);
    // secrets/ outlives a failed build (it is reused, not made per build): nothing else may be left.
    expect(await readdir(failed)).toEqual(['secrets']);
  });

  it('leaves the release as it was when it fails', async () => {
    const before = contentsOf(out);
    const run = await build('st-1', ['--release'], await withXz(OUT_OF_SPACE));
    expect(run.code).not.toBe(0);
    expect(run.stderr).toMatch(/^error: xz failed \(exit status 1\): xz: \(stdout\): Write error: No space left on device; /m);
    expect(run.stderr).not.toMatch(/internal error/);
    expect(contentsOf(out)).toBe(before);
  });

  it("with --release replaces that image's lines in SHA256SUMS, keeping other images'", async () => {
    const before = await checkedSums(out);
    const run = await build('st-1', ['--release']);
    expect(run.code, run.stderr).toBe(0);
    const sums = await checkedSums(out);
    expect(Object.keys(sums)).toEqual(['st-1.bmap', 'st-1.img', 'st-1.img.xz', 'st-2.bmap', 'st-2.img', 'st-2.img.xz']);
    // sha256sum -c has checked st-1's new lines against its new files; st-2's are as the fleet left them.
    for (const file of ['st-2.bmap', 'st-2.img', 'st-2.img.xz']) expect(sums[file]).toBe(before[file]);
    await expectReleaseFiles(out, 'st-1', sums['st-1.img']);
  });

  it("with --checksum alone removes that image's .img.xz and .bmap and its lines in SHA256SUMS, keeping other images'", async () => {
    const run = await build('st-1', ['--checksum']);
    expect(run.code, run.stderr).toBe(0);
    const files = await readdir(out);
    expect(files).not.toContain('st-1.img.xz');
    expect(files).not.toContain('st-1.bmap');
    expect(Object.keys(await checkedSums(out))).toEqual(['st-2.bmap', 'st-2.img', 'st-2.img.xz']);
    execFileSync('sha256sum', ['-c', 'st-1.img.sha256'], { cwd: out });
    expect(run.stdout).not.toMatch(/SHA256SUMS/);
  });

  it('removes SHA256SUMS when the last image it named is rebuilt without --release, and the .img.sha256 without --checksum', async () => {
    expect((await build('st-2')).code).toBe(0);
    expect((await readdir(out)).sort()).toEqual(['host', 'secrets', 'st-1.img', 'st-1.img.sha256', 'st-2.img']);
  });
});

describe('a failing xz', () => {
  // Stand-ins for how xz fails in the field: out of disk, killed, gone before reading its input, missing.
  const cases: { name: string; xz?: string; message: RegExp }[] = [
    {
      name: 'exits non-zero',
      xz: OUT_OF_SPACE,
      message: /^xz failed \(exit status 1\): xz: \(stdout\): Write error: No space left on device; check free space in /,
    },
    { name: 'is killed', xz: 'kill -KILL $$', message: /^xz failed \(killed by SIGKILL\); check free space in / },
    {
      name: 'exits before reading its input',
      xz: 'echo "xz: Cannot allocate memory" >&2; exit 3',
      message: /^xz failed \(exit status 3\): xz: Cannot allocate memory; /,
    },
    { name: 'is not installed', message: /^xz is not installed \(spawn xz ENOENT\); install the xz-utils package/ },
  ];
  for (const c of cases) {
    it(`${c.name}: one line naming xz, what it said and what to do`, async () => {
      const dir = await tempDir();
      const image = join(dir, 'data.img');
      // Larger than a pipe's buffer, so the writes to xz block or break.
      await writeFile(image, Buffer.alloc(16 * 1024 * 1024, 0x5a));
      const path = process.env.PATH;
      process.env.PATH = c.xz ? (await withXz(c.xz)).PATH : await fakeBin({});
      try {
        const error = await scanImage(image, { bmap: true, xzTo: join(dir, 'data.img.xz') }).catch((e: unknown) => e);
        expect(error).toBeInstanceOf(UserError);
        expect((error as Error).message).toMatch(c.message);
        expect((error as Error).message).not.toMatch(/\n/);
      } finally {
        process.env.PATH = path;
      }
    });
  }
});
