import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import type { ImageReport } from '../src/cli/inspect.js';
import { configWithFakeBundle } from './docker-bundle-fixture.js';
import { buildImage, runScript } from './support/cli.js';
import { debugfsCat, dumpe2fsHeader } from './support/debugfs.js';
import { partitionOffsets, ROOT_UUID, stockImage, tempDir } from './support/images.js';

const inspect = (args: string[]) => runScript('src/cli/inspect-command.ts', args);

async function inspectJson(img: string): Promise<ImageReport> {
  const run = await inspect(['--input', img, '--json']);
  expect(run.stderr).toBe('');
  expect(run.code).toBe(0);
  return JSON.parse(run.stdout) as ImageReport;
}

describe('npm run inspect on the stock image', () => {
  let img: string;
  let report: ImageReport;
  beforeAll(async () => {
    img = await stockImage('stock');
    report = await inspectJson(img);
  });

  it('lists the partitions as sfdisk and dumpe2fs see them', async () => {
    const table = await partitionOffsets(img);
    expect(report.partitions.map(({ number, offset, size }) => ({ number, offset, size }))).toEqual(
      table.partitions.map(({ number, offset, size }) => ({ number, offset, size })),
    );
    expect(report.diskId).toBe(table.id);
    const header = await dumpe2fsHeader(img);
    expect(report.partitions).toEqual([
      expect.objectContaining({ number: 1, role: 'boot', type: '0x0c', filesystem: 'FAT32' }),
      expect.objectContaining({
        number: 2,
        role: 'rootfs',
        type: '0x83',
        filesystem: 'ext4',
        uuid: ROOT_UUID,
        label: header['Filesystem volume name'],
      }),
    ]);
    expect(header['Filesystem UUID']).toBe(ROOT_UUID);
  });

  it('reads the stock boot.ini: graphics on, 4 cores at 1536 MHz, no init=', () => {
    expect(report.boot).toMatchObject({
      kind: 'c2-boot.ini',
      file: '/boot.ini',
      variables: { nographics: '0', maxcpus: '4', max_freq: '1536' },
    });
    expect(report.boot.bootargs).toMatch(new RegExp(`^root=UUID=${ROOT_UUID} rootwait ro .*max_freq=1536 maxcpus=4 `));
    expect(report.boot.bootargs).not.toContain('${');
    expect(report.boot.init).toBeUndefined();
  });

  it('finds the 3.16 kernel and what it ships: g_ether, the old overlayfs and aufs, not the mainline overlay', () => {
    expect(report.kernels).toEqual([
      {
        version: '3.16.85-65',
        modules: { g_ether: true, g_ncm: false, overlay: false, overlayfs: true, aufs: true, nfs: true, fuse: true, loop: true },
      },
    ]);
  });

  it('sees ifupdown, systemd, no build stamp and none of the steps', () => {
    expect(report.network).toEqual({ mechanism: 'ifupdown', evidence: '/etc/network/interfaces' });
    expect(report.init).toEqual({ path: '/sbin/init', target: '/lib/systemd/systemd', present: true, systemd: true });
    expect(report.stamp).toBeUndefined();
    expect(report.steps.length).toBeGreaterThan(0);
    expect(report.steps.filter((s) => s.applied)).toEqual([]);
    expect(report.steps.at(-1)?.name).toBe('build-stamp');
  });

  it('prints the same as text', async () => {
    const run = await inspect(['--input', img]);
    expect(run.code).toBe(0);
    expect(run.stdout).toMatch(/^partitions\n {2}1 +boot +type 0x0c +offset +1048576 +size +128 MiB +FAT32\n/m);
    expect(run.stdout).toMatch(/^ {2}nographics +0$/m);
    expect(run.stdout).toMatch(
      /^kernel +3\.16\.85-65: g_ether yes, g_ncm no, overlay no, overlayfs yes, aufs yes, nfs yes, fuse yes, loop yes$/m,
    );
    expect(run.stdout).toMatch(/^network +ifupdown \(\/etc\/network\/interfaces\)$/m);
    expect(run.stdout).toMatch(/^init +systemd \(\/sbin\/init -> \/lib\/systemd\/systemd\)$/m);
    expect(run.stdout).toMatch(/^ {2}build-stamp +not applied$/m);
    expect(run.stdout).toMatch(/^build stamp +none/m);
  });
});

describe('npm run inspect on other images', () => {
  it('on a built image: the build stamp and the steps it lists show as applied', async () => {
    const out = await tempDir();
    const config = await configWithFakeBundle(await tempDir());
    const build = await buildImage(['--input', await stockImage('stock'), '--out', out, '--name', 'inspected', '--config', config]);
    expect(build.stderr).not.toMatch(/internal error/);
    expect(build.code).toBe(0);
    const img = join(out, 'inspected.img');
    const report = await inspectJson(img);
    expect(report.stamp).toEqual(JSON.parse(await debugfsCat(img, '/etc/odroid-buildx-image.json')));
    expect(report.stamp).toMatchObject({ tool: 'odroid-buildx-image', name: 'inspected' });
    const applied = report.steps.filter((s) => s.applied).map((s) => s.name);
    expect(applied).toContain('build-stamp');
    // Every step the build ran reports itself applied, except overlays, which has nothing to copy
    // while the repository's overlays/ holds only .keep files.
    const ran = (report.stamp as { steps: string[] }).steps.filter((name) => name !== 'overlays');
    expect(applied).toEqual(expect.arrayContaining(ran));
  });

  it('on a C4-style image: the settings come from config.ini', async () => {
    const report = await inspectJson(await stockImage('c4'));
    expect(report.boot).toMatchObject({ kind: 'config.ini', file: '/config.ini', variables: { display_autodetect: 'true', maxcpus: '4' } });
  });
});

describe('npm run inspect with bad input: one error line, non-zero exit', () => {
  const cases: { name: string; args: () => Promise<string[]>; message: RegExp }[] = [
    { name: 'no --input', args: async () => [], message: /pass --input IMAGE/ },
    { name: 'a missing file', args: async () => ['--input', join(await tempDir(), 'nope.img')], message: /not found/ },
    { name: 'a GPT image', args: async () => ['--input', await stockImage('gpt')], message: /GPT/ },
    { name: 'an unknown option', args: async () => ['--inptu', 'x.img'], message: /--inptu.*see --help/ },
  ];
  for (const c of cases) {
    it(c.name, async () => {
      const run = await inspect(await c.args());
      expect(run.code).not.toBe(0);
      expect(run.stdout).toBe('');
      expect(run.stderr.trim().split('\n')).toEqual([expect.stringMatching(/^error: /)]);
      expect(run.stderr).toMatch(c.message);
    });
  }
});
