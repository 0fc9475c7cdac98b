/*
 * What a build does with the user's --out: the modes of what it writes there, the paths it
 * deletes, replaces or refuses (docs/out-dir.md). Real builds, checked with stat and ls.
 */
import { stat } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { configWithFakeBundle } from './docker-bundle-fixture.js';
import { buildImage } from './support/cli.js';
import { SMALL_SIZE_MIB, stockImage, tempDir } from './support/images.js';

const NAME = 'o';
const smallInput = () => stockImage('stock', { sizeMiB: SMALL_SIZE_MIB });
const modeOf = async (path: string) => ((await stat(path)).mode & 0o777).toString(8);

/** A build of `NAME` into `out` from the small stock image, with `extra` flags. */
async function build(out: string, extra: string[] = []) {
  const config = await configWithFakeBundle(await tempDir());
  return buildImage(['--input', await smallInput(), '--out', out, '--name', NAME, '--config', config, ...extra]);
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
