/*
 * What a build does with the user's --out: the modes of what it writes there, the paths it
 * deletes, replaces or refuses (docs/out-dir.md). Real builds, checked with stat and ls.
 */
import { execFileSync } from 'node:child_process';
import { mkdir, readdir, readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { configWithFakeBundle } from './docker-bundle-fixture.js';
import { buildImage } from './support/cli.js';
import { SMALL_SIZE_MIB, stockImage, tempDir } from './support/images.js';

const NAME = 'o';
const smallInput = () => stockImage('stock', { sizeMiB: SMALL_SIZE_MIB });
/** Every file under `dir` with its sha256, to tell whether a build changed anything there. */
const contentsOf = (dir: string) =>
  execFileSync('sh', ['-c', 'find . -type f -exec sha256sum {} + | sort -k 2'], { cwd: dir, encoding: 'utf8' });
const modeOf = async (path: string) => ((await stat(path)).mode & 0o777).toString(8);

/** A build of `NAME` into `out` from the small stock image, with `extra` flags. */
async function build(out: string, extra: string[] = [], env?: NodeJS.ProcessEnv) {
  const config = await configWithFakeBundle(await tempDir());
  return buildImage(['--input', await smallInput(), '--out', out, '--name', NAME, '--config', config, ...extra], env);
}

describe('files that hold the device private keys', () => {
  it('--release makes the image and its xz owner-only (0600); checksums and the block map stay readable', async () => {
    const out = await tempDir();
    const run = await build(out, ['--release']);
    expect(run.code, run.stderr).toBe(0);
    expect(await modeOf(join(out, `${NAME}.img`))).toBe('600');
    expect(await modeOf(join(out, `${NAME}.img.xz`))).toBe('600');
    expect(await modeOf(join(out, `${NAME}.bmap`))).toBe('644');
    expect(await modeOf(join(out, 'SHA256SUMS'))).toBe('644');
    expect(run.stdout).toMatch(/^ {2}private {2}0600, owner only: the image and its \.xz hold the device's TLS server key/m);
  });
});

describe('paths in --out the build did not make', () => {
  it('are never deleted or moved for looking like leftovers, also after a killed build', async () => {
    const out = await tempDir();
    const mine = {
      '.thesis.2024.tmp/chapter1.tex': 'chapter 1',
      '.new-photos/a.jpg': 'photo',
      '.x.old-abc123/old/notes': 'old notes',
      '.o.img.123.tmp': 'not a temp image of this tool',
    };
    for (const [path, text] of Object.entries(mine)) {
      await mkdir(join(out, path, '..'), { recursive: true });
      await writeFile(join(out, path), text);
    }
    const killed = await build(out, [], { ODROID_BUILD_KILL_AT: 'after copy' });
    expect(killed.code).not.toBe(0);
    expect((await readdir(out)).filter((name) => /^\.o\.img\.\d+\.tmp$/.test(name))).toHaveLength(2);
    const run = await build(out);
    expect(run.code, run.stderr).toBe(0);
    // The killed build's own temp image went, and only it.
    expect(run.stderr).toMatch(/^removed what an interrupted build left in .*: \.o\.img\.\d+\.tmp$/m);
    for (const [path, text] of Object.entries(mine)) expect(await readFile(join(out, path), 'utf8'), path).toBe(text);
    expect((await readdir(out)).sort()).toEqual(
      [...Object.keys(mine).map((path) => path.split('/')[0]), 'host', 'o.img', 'secrets'].sort(),
    );
  });
});

describe('--rotate-secrets with a build that fails at its last step', () => {
  it('keeps the old secrets and host kit, which the image in --out matches', async () => {
    const out = await tempDir();
    expect((await build(out)).code).toBe(0);
    const before = { secrets: contentsOf(join(out, 'secrets')), host: contentsOf(join(out, 'host')) };
    const image = join(out, `${NAME}.img`);
    // An immutable image: its replacement's rename, the build's very last write, fails with EPERM.
    execFileSync('chattr', ['+i', image]);
    let run: Awaited<ReturnType<typeof build>>;
    try {
      run = await build(out, ['--rotate-secrets']);
    } finally {
      execFileSync('chattr', ['-i', image]);
    }
    expect(run.stderr).not.toMatch(/internal error/);
    expect(run.code).not.toBe(0);
    expect(run.stderr).toMatch(/^error: cannot replace .*o\.img \(EPERM\)/m);
    expect({ secrets: contentsOf(join(out, 'secrets')), host: contentsOf(join(out, 'host')) }).toEqual(before);
    expect((await readdir(out)).sort()).toEqual(['host', `${NAME}.img`, 'secrets']);
  });
});

describe('--rotate-secrets stopped just before the images are renamed', () => {
  it.each(['SIGTERM', 'SIGKILL'])('by %s: secrets/ and host/ are the old ones once the next build has started', async (signal) => {
    const out = await tempDir();
    expect((await build(out)).code).toBe(0);
    const before = { secrets: contentsOf(join(out, 'secrets')), host: contentsOf(join(out, 'host')) };
    const stopped = await build(out, ['--rotate-secrets'], { ODROID_BUILD_KILL_AT: 'rename images', ODROID_BUILD_KILL_WITH: signal });
    expect(stopped.code).not.toBe(0);
    // A SIGKILLed build cleans nothing: the next one puts the old directories back from its journal.
    if (signal === 'SIGKILL') expect((await build(out)).stderr).toMatch(/^restored .*\/secrets, which a build killed/m);
    expect({ secrets: contentsOf(join(out, 'secrets')), host: contentsOf(join(out, 'host')) }).toEqual(before);
    expect((await readdir(out)).sort()).toEqual(['host', `${NAME}.img`, 'secrets']);
  });
});

describe('a host/ in --out that this tool did not write', () => {
  it('is refused in one line naming it, before any work, and left as it was', async () => {
    const out = await tempDir();
    await mkdir(join(out, 'host'));
    await writeFile(join(out, 'host/notes.txt'), 'my notes');
    const run = await build(out);
    expect(run.code).toBe(1);
    expect(run.stderr.split('\n').filter((line) => line.startsWith('error:'))).toEqual([
      `error: ${join(out, 'host')} was not written by this tool (it has no .written-by-odroid-buildx-image), and a build replaces host/ whole: move it away (or, if it is an earlier build's kit, delete it), or pass another --out`,
    ]);
    expect(await readFile(join(out, 'host/notes.txt'), 'utf8')).toBe('my notes');
    expect(await readdir(out)).toEqual(['host']);
  });
});

describe('a directory where the build writes an image', () => {
  it('is refused in one line before any work', async () => {
    const out = await tempDir();
    await mkdir(join(out, `${NAME}.img`));
    const run = await build(out);
    expect(run.code).toBe(1);
    expect(run.stderr.split('\n').filter((line) => line.startsWith('error:'))).toEqual([
      `error: ${join(out, `${NAME}.img`)} is a directory, where the build writes a file: move it away, or pass another --out or --name`,
    ]);
    // Before the copy: no temp image was made, no secrets, no kit.
    expect(run.stderr).not.toMatch(/^time: .*copy/m);
    expect(await readdir(out)).toEqual([`${NAME}.img`]);
  });
});
