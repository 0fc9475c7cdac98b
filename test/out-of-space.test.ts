/*
 * A full disk, for real: build.ts runs in a user and mount namespace where --out (or the image
 * cache, or the secrets) is a small tmpfs. Whatever runs out of room, the user gets one `error:`
 * line naming the file and what to do, and no image or temp file is left behind.
 */
import { spawnSync } from 'node:child_process';
import { readdir, readFile, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { sha256File } from '../src/checksum.js';
import { bundleFiles, configWithFakeBundle, makeBundle } from './docker-bundle-fixture.js';
import { startServer } from './http-server.js';
import { buildImage, REPO, type RunResult } from './support/cli.js';
import { copyOfStockImage, SMALL_SIZE_MIB, skipWithout, stockImage, tempDir } from './support/images.js';

const noTmpfs = skipWithout({
  'a tmpfs mount in a user and mount namespace (unshare -rm mount -t tmpfs)':
    spawnSync('unshare', ['-rm', 'sh', '-c', 'mount -t tmpfs -o size=1m tmpfs "$1"', 'sh', tmpdir()]).status === 0,
});

const MiB = 1024 * 1024;
const CACHE_DIR = join(REPO, 'image');

interface Tmpfs {
  dir: string;
  bytes: number;
  /** Filled up before the build starts. */
  full?: boolean;
}

const quote = (text: string) => `'${text.replaceAll("'", "'\\''")}'`;

/**
 * build.ts with each of `mounts` a tmpfs of its size, private to the run; `left` lists what is
 * under `look` when the build has exited (the tmpfs goes with the namespace).
 */
async function buildOnTmpfs(mounts: Tmpfs[], args: string[], look: string): Promise<RunResult & { left: string[] }> {
  const listing = join(await tempDir(), 'left');
  const script = [
    ...mounts.map(({ dir, bytes, full }) => {
      const mount = `mkdir -p ${quote(dir)} && mount -t tmpfs -o size=${bytes} tmpfs ${quote(dir)}`;
      return `${mount}${full ? ` && head -c ${bytes} /dev/zero >${quote(join(dir, 'filler'))}` : ''} || exit 125`;
    }),
    '"$@"; status=$?',
    `find ${quote(look)} -mindepth 1 -printf '%P\\n' | sort >${quote(listing)}`,
    'exit $status',
  ].join('\n');
  const run = await buildImage(args, {}, ['unshare', '-rm', 'sh', '-c', script, 'sh']);
  const left = (await readFile(listing, 'utf8').catch(() => '')).split('\n').filter(Boolean);
  return { ...run, left };
}

/** The run failed with exactly one `error:` line, matching `message`, and no stack. */
function expectOneLine(run: RunResult, message: RegExp): void {
  expect(run.code, run.stderr).toBe(1);
  const errors = run.stderr.split('\n').filter((line) => line.startsWith('error:'));
  expect(errors).toHaveLength(1);
  expect(errors[0]).toMatch(message);
  expect(run.stderr).not.toMatch(/internal error|^\s+at /m);
}

/** What a sparse copy of the stock fixture allocates: --out needs that much before the patch starts. */
async function copiedBytes(): Promise<number> {
  const copy = await copyOfStockImage('stock', await tempDir());
  return (await stat(copy)).blocks * 512;
}

describe.skipIf(noTmpfs)('out of space (a tmpfs in a user namespace)', () => {
  it('in --out while patching: one line naming the image and --out, input untouched, no image or temp file left', async () => {
    const input = await stockImage('stock');
    const before = await sha256File(input);
    const out = join(await tempDir(), 'out');
    // The copy fits; the fake Docker bundle (over 3 MiB of random bytes) that the patch adds does not.
    const bytes = (await copiedBytes()) + MiB;
    const run = await buildOnTmpfs(
      [{ dir: out, bytes }],
      ['--input', input, '--out', out, '--name', 'full', '--config', await configWithFakeBundle(await tempDir())],
      out,
    );
    expect(run.stderr).toMatch(/^step docker: /m);
    expectOneLine(
      run,
      /^error: cannot write \S+\/\.full\.img\.\d+\.tmp: no space left on device \(ENOSPC\); free space in --out, or pass another --out$/,
    );
    // secrets/ is reused by the next build, not made per build: nothing else may be left.
    expect(run.left.filter((file) => !file.startsWith('secrets/'))).toEqual(['secrets']);
    expect(await sha256File(input)).toBe(before);
  });

  it('in --out while copying the source image: one line naming --out', async () => {
    const out = join(await tempDir(), 'out');
    const bytes = Math.floor((await copiedBytes()) / 2);
    const run = await buildOnTmpfs(
      [{ dir: out, bytes }],
      ['--input', await stockImage('stock'), '--out', out, '--name', 'full', '--config', await configWithFakeBundle(await tempDir())],
      out,
    );
    expectOneLine(run, /^error: cannot copy .*No space left on device; check free space in --out, or pass another --out$/);
    expect(run.left).toEqual([]);
  });

  it('in the secrets: one line naming ssh-keygen, the secrets directory and --out', async () => {
    const out = join(await tempDir(), 'out');
    const run = await buildOnTmpfs(
      [{ dir: join(out, 'secrets'), bytes: 4096, full: true }],
      ['--input', await stockImage('stock'), '--out', out, '--name', 'full', '--config', await configWithFakeBundle(await tempDir())],
      out,
    );
    expectOneLine(
      run,
      /^error: ssh-keygen could not make the ed25519 host key: .*No space left on device; check free space in \S+\/secrets\/ssh \(or pass another --out\)/,
    );
    expect(run.left.filter((file) => /\.img$|\.tmp$|\.new-/.test(file))).toEqual([]);
  });

  it('in the image cache while decompressing: one line naming the cache, no partial image left', async () => {
    const dir = await tempDir();
    const xz = join(dir, 'stock.img.xz');
    spawnSync('sh', ['-c', `xz -T0 -1 -c ${quote(await stockImage('stock'))} >${quote(xz)}`]);
    // The decompressed image takes more than the cache's 1 MiB.
    const run = await buildOnTmpfs(
      [{ dir: CACHE_DIR, bytes: MiB }],
      ['--input', xz, '--out', join(dir, 'out'), '--name', 'full', '--config', await configWithFakeBundle(dir)],
      CACHE_DIR,
    );
    expectOneLine(
      run,
      new RegExp(
        `^error: cannot write ${CACHE_DIR}/stock\\.img\\.\\d+\\.tmp: no space left on device \\(ENOSPC\\); free space in the image cache ${CACHE_DIR}$`,
      ),
    );
    expect(run.left).toEqual([]);
  });

  it('in the image cache while downloading: one line naming the cache, the partial download kept for a resume', async () => {
    const server = await startServer({ '/big.img': { body: Buffer.alloc(2 * MiB, 0x5a) } });
    try {
      const dir = await tempDir();
      const run = await buildOnTmpfs(
        [{ dir: CACHE_DIR, bytes: MiB }],
        ['--input', server.url('/big.img'), '--out', join(dir, 'out'), '--name', 'full'],
        CACHE_DIR,
      );
      expectOneLine(
        run,
        new RegExp(
          `^error: cannot write ${CACHE_DIR}/big\\.img\\.part: no space left on device \\(ENOSPC\\); free space in the image cache ${CACHE_DIR}$`,
        ),
      );
      expect(run.left).toEqual(['big.img.part']);
    } finally {
      await server.close();
    }
  });
});

describe('a root file system too small for what the build adds', () => {
  const TOO_SMALL =
    /^error: the root file system \(partition 2 of .*\) has \d+\.\d MiB free and this build needs 2\d\d\.\d MiB; grow the image and its root partition first \(docs\/rootfs-space\.md: truncate, sfdisk, resize2fs\), or use a smaller docker\.bundle/;

  /** A config whose bundle unpacks to 200 MiB (zeros: a small .tgz), and the small fixture, about 25 MiB free. */
  async function tooBig(dir: string): Promise<{ config: string; input: string }> {
    const files = bundleFiles();
    files.dockerd = Buffer.concat([files.dockerd.subarray(0, 64), Buffer.alloc(200 * MiB)]);
    const bundle = join(dir, 'docker-big.tgz');
    await makeBundle(bundle, files);
    const config = join(dir, 'config.json');
    await writeFile(config, JSON.stringify({ docker: { bundle } }));
    return { config, input: await stockImage('stock', { sizeMiB: SMALL_SIZE_MIB }) };
  }

  it('is refused before the copy, in one line with the free and needed MiB and what to do', async () => {
    const dir = await tempDir();
    const { config, input } = await tooBig(dir);
    const out = join(dir, 'out');
    const before = await sha256File(input);
    const run = await buildImage(['--input', input, '--out', out, '--name', 'big', '--config', config]);
    expectOneLine(run, TOO_SMALL);
    // Refused at the space check: no copy was made, nothing was patched.
    expect(run.stderr).toMatch(/^time: .*space [\d.]+s; total/m);
    expect(run.stderr).not.toMatch(/copy [\d.]+s|^step /m);
    expect((await readdir(out)).filter((file) => /\.img|\.tmp$/.test(file))).toEqual([]);
    expect(await sha256File(input)).toBe(before);
  });

  it('is refused by --dry-run too, from the plan it prints', async () => {
    const dir = await tempDir();
    const { config, input } = await tooBig(dir);
    const out = join(dir, 'out');
    const run = await buildImage(['--input', input, '--out', out, '--config', config, '--dry-run']);
    expectOneLine(run, TOO_SMALL);
    expect(run.stdout).toMatch(/^docker:\n[\s\S]*^build-stamp:\n/m);
    expect(await readdir(out).catch(() => [])).toEqual([]);
  });
});
