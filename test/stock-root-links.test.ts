/**
 * A stock root whose /etc and /usr/local/bin are symlinks (a merged or otherwise re-arranged
 * root is real): the build follows them inside the image, as the running system would, and
 * writes through them instead of failing or replacing the links.
 */
import { spawnSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { configWithFakeBundle } from './docker-bundle-fixture.js';
import { buildImage } from './support/cli.js';
import { debugfsBatch, debugfsCat, debugfsStat } from './support/debugfs.js';
import { e2fsckClean } from './support/fsck.js';
import { copyOfStockImage, rootfsSpec, tempDir } from './support/images.js';

describe('a stock root with /etc and /usr/local/bin as symlinks', () => {
  it('builds through the links: the links stay, the files land where they point, e2fsck is clean', async () => {
    const dir = await tempDir();
    const input = await copyOfStockImage('stock', dir);
    // debugfs's ln and unlink move /etc but leave its '..' and the link counts: e2fsck -fy mends them.
    await debugfsBatch(
      input,
      [
        'mkdir /private',
        'ln /etc /private/etc',
        'unlink /etc',
        'symlink /etc private/etc',
        'mkdir /opt/local-bin',
        'rmdir /usr/local/bin',
        'symlink /usr/local/bin /opt/local-bin',
      ],
      { write: true },
    );
    spawnSync('e2fsck', ['-fy', await rootfsSpec(input)]);
    expect(await e2fsckClean(input)).toMatchObject({ ok: true });
    const out = `${dir}/out`;
    const run = await buildImage(['--input', input, '--out', out, '--config', await configWithFakeBundle(dir), '--name', 'links']);
    expect(run.stderr).not.toMatch(/internal error/);
    expect(run.code, run.stderr).toBe(0);
    const img = `${out}/links.img`;
    expect(await debugfsStat(img, '/etc')).toMatchObject({ type: 'symlink' });
    expect(await debugfsStat(img, '/usr/local/bin')).toMatchObject({ type: 'symlink' });
    expect(await debugfsCat(img, '/private/etc/hostname')).toBe('links\n');
    expect(await debugfsStat(img, '/opt/local-bin/dockerd')).toMatchObject({ type: 'regular' });
    expect(await e2fsckClean(img)).toMatchObject({ ok: true });
  });

  for (const [kind, target] of [
    ['dangling', '/nowhere/interfaces'],
    ['looping', 'interfaces'],
  ] as const) {
    it(`with a ${kind} /etc/network/interfaces builds, and usb0 comes up through the tool's own unit`, async () => {
      const dir = await tempDir();
      const input = await copyOfStockImage('stock', dir);
      await debugfsBatch(input, ['rm /etc/network/interfaces', `symlink /etc/network/interfaces ${target}`], { write: true });
      const out = `${dir}/out`;
      const run = await buildImage(['--input', input, '--out', out, '--config', await configWithFakeBundle(dir), '--name', kind]);
      expect(run.stderr).not.toMatch(/internal error/);
      expect(run.code, run.stderr).toBe(0);
      expect(run.stdout).toMatch(/usb0 +usb0-unit from \/usr\/local\/sbin\/usb0-address/);
      expect(await e2fsckClean(`${out}/${kind}.img`)).toMatchObject({ ok: true });
    });
  }
});
