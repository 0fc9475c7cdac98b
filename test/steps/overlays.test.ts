import { execFile as execFileCallback } from 'node:child_process';
import { chmod, mkdir, symlink, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { promisify } from 'node:util';
import { beforeAll, describe, expect, it } from 'vitest';
import { describeOperation } from '../../src/engine/operations.js';
import { viewOf, withPartitions } from '../../src/engine/patch.js';
import type { Step } from '../../src/engine/step.js';
import { UserError } from '../../src/errors.js';
import { openImage } from '../../src/image/open.js';
import { overlaysStep } from '../../src/steps/overlays.js';
import { debugfsCat, debugfsStat } from '../support/debugfs.js';
import { e2fsckClean, fsckFatClean } from '../support/fsck.js';
import { tempDir } from '../support/images.js';
import { mdirBoot, mtypeBoot } from '../support/mtools.js';
import { type PatchedFixture, patchFixture } from './patch-fixture.js';

const execFile = promisify(execFileCallback);

/** Lays out an overlay dir: a string is a file, { link } a symlink, { fifo } a named pipe; modes as given. */
type Spec = Record<string, string | { link: string } | { fifo: true } | { content: string; mode: number }>;
async function makeOverlay(spec: Spec): Promise<string> {
  const dir = await tempDir();
  for (const [path, what] of Object.entries(spec)) {
    const file = join(dir, path);
    await mkdir(dirname(file), { recursive: true });
    if (typeof what === 'string') await writeFile(file, what);
    else if ('link' in what) await symlink(what.link, file);
    else if ('fifo' in what) await execFile('mkfifo', [file]);
    else {
      await writeFile(file, what.content);
      await chmod(file, what.mode);
    }
  }
  return dir;
}

async function bootNames(img: string, dir: string): Promise<string[]> {
  return (await mdirBoot(img, dir)).map((line) => line.replace(/^::\/(.*\/)?/, ''));
}

async function isApplied(step: Step, img: string): Promise<boolean> {
  const layout = await openImage(img);
  return withPartitions(layout, false, (parts) => step.applied(viewOf(layout, parts)));
}

// Plain text, so debugfs and mtools output compares as a string; over 1 MiB, so it is streamed.
const BIG = Array.from({ length: 120_000 }, (_, i) => `line ${i}\n`).join('');
const LONG_NAME = 'a rather long file name, for the FAT partition.txt';

describe('overlays step', () => {
  let overlay: string;
  let step: Step;
  let patched: PatchedFixture;

  beforeAll(async () => {
    overlay = await makeOverlay({
      'rootfs/.keep': '',
      'rootfs/etc/.keep': '',
      'rootfs/usr/local/bin/hello': { content: '#!/bin/sh\necho hello\n', mode: 0o700 },
      'rootfs/etc/motd': { content: 'built by odroid-buildx-image\n', mode: 0o600 },
      'rootfs/etc/resolv.conf': 'nameserver 10.0.0.1\n',
      'rootfs/etc/app/config': 'secret=1\n',
      'rootfs/srv/wide/data': 'owned by a container user\n',
      'rootfs/etc/app/current': { link: '../../elsewhere/outside-the-overlay' },
      'rootfs/root/.ssh/authorized_keys': 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIDx user@laptop\n',
      'rootfs/opt/big.txt': BIG,
      'rootfs.modes': [
        '# path                          mode  owner',
        '/root/.ssh                      0700',
        '/root/.ssh/authorized_keys      0600  0:0',
        '/etc/app/config                 0640  0:42   # group shadow',
        '/srv/wide                       0750  65536:70000',
        '/srv/wide/data                  0640  1065536:100000',
        '',
      ].join('\n'),
      'boot/.keep': '',
      [`boot/${LONG_NAME}`]: 'long names survive\n',
      'boot/overlays/custom.dtbo': 'not really a dtbo\n',
      'boot/Image.big': BIG,
    });
    step = overlaysStep(overlay);
    patched = await patchFixture([step]);
  });

  it('copies files with the default modes: executable 0755, else 0644, new directories 0755, all root:root', async () => {
    const { img } = patched;
    expect(await debugfsCat(img, '/usr/local/bin/hello')).toBe('#!/bin/sh\necho hello\n');
    expect(await debugfsStat(img, '/usr/local/bin/hello')).toMatchObject({ type: 'regular', mode: 0o755, uid: 0, gid: 0 });
    expect(await debugfsStat(img, '/etc/motd')).toMatchObject({ type: 'regular', mode: 0o644, uid: 0, gid: 0 });
    expect(await debugfsStat(img, '/etc/app')).toMatchObject({ type: 'directory', mode: 0o755, uid: 0, gid: 0 });
    // Directories that were already there keep theirs.
    expect(await debugfsStat(img, '/root')).toMatchObject({ mode: 0o700 });
    expect(await debugfsStat(img, '/etc')).toMatchObject({ mode: 0o755 });
  });

  it('applies the modes file: 0600 key, 0700 directory, 0640 root:shadow', async () => {
    const { img } = patched;
    expect(await debugfsStat(img, '/root/.ssh')).toMatchObject({ type: 'directory', mode: 0o700, uid: 0, gid: 0 });
    expect(await debugfsStat(img, '/root/.ssh/authorized_keys')).toMatchObject({ type: 'regular', mode: 0o600, uid: 0, gid: 0 });
    expect(await debugfsStat(img, '/etc/app/config')).toMatchObject({ mode: 0o640, uid: 0, gid: 42 });
    expect(await debugfsCat(img, '/etc/app/config')).toBe('secret=1\n');
  });

  it('stores owners above 65535 whole (32-bit ids), as user-namespaced containers use them', async () => {
    const { img } = patched;
    expect(await debugfsStat(img, '/srv/wide')).toMatchObject({ type: 'directory', mode: 0o750, uid: 65536, gid: 70000 });
    expect(await debugfsStat(img, '/srv/wide/data')).toMatchObject({ mode: 0o640, uid: 1065536, gid: 100000 });
  });

  it('copies symlinks as links with their target verbatim, and replaces an image symlink by a file', async () => {
    const { img } = patched;
    expect(await debugfsStat(img, '/etc/app/current')).toMatchObject({
      type: 'symlink',
      target: '../../elsewhere/outside-the-overlay',
      uid: 0,
      gid: 0,
    });
    expect(await debugfsStat(img, '/etc/resolv.conf')).toMatchObject({ type: 'regular', mode: 0o644 });
    expect(await debugfsCat(img, '/etc/resolv.conf')).toBe('nameserver 10.0.0.1\n');
  });

  it('streams large files instead of writing them whole, into the rootfs and the FAT root', async () => {
    const { img, result } = patched;
    const planned = result.planned.find((p) => p.step === 'overlays')!.operations.map(describeOperation);
    expect(planned).toContainEqual(expect.stringMatching(/^stream +rootfs:\/opt: big\.txt/));
    expect(planned).toContainEqual(expect.stringMatching(/^stream +boot:\/: Image\.big/));
    expect(await debugfsCat(img, '/opt/big.txt')).toBe(BIG);
    expect(await mtypeBoot(img, '/Image.big')).toBe(BIG);
  });

  it('copies the boot tree, long names and subdirectories included, to the FAT partition', async () => {
    const { img } = patched;
    expect(await mtypeBoot(img, `/${LONG_NAME}`)).toBe('long names survive\n');
    expect(await mtypeBoot(img, '/overlays/custom.dtbo')).toBe('not really a dtbo\n');
    expect(await bootNames(img, '/overlays')).toEqual(['custom.dtbo']);
  });

  it('ignores .keep placeholders', async () => {
    const { img } = patched;
    expect(await debugfsStat(img, '/.keep')).toBeUndefined();
    expect(await debugfsStat(img, '/etc/.keep')).toBeUndefined();
    expect((await bootNames(img, '/')).map((n) => n.toLowerCase())).not.toContain('.keep');
  });

  it('leaves both file systems clean', async () => {
    expect((await e2fsckClean(patched.img)).ok).toBe(true);
    expect((await fsckFatClean(patched.img)).ok).toBe(true);
  });

  it('is idempotent: on its own output it plans nothing, and it reports itself applied there only', async () => {
    const again = await patchFixture([step], {}, { img: patched.img, dir: patched.dir });
    expect(again.result.planned).toEqual([{ step: 'overlays', operations: [] }]);
    expect(again.result.bytesWritten).toBe(0);
    expect(await isApplied(step, patched.img)).toBe(true);
    const stock = await patchFixture([]);
    expect(await isApplied(step, stock.img)).toBe(false);
  });

  it('an empty overlay (only .keep files) plans nothing and does not count as applied', async () => {
    const empty = overlaysStep(await makeOverlay({ 'rootfs/.keep': '', 'boot/.keep': '', 'templates/.keep': '' }));
    const run = await patchFixture([empty]);
    expect(run.result.operations).toBe(0);
    expect(await isApplied(empty, run.img)).toBe(false);
  });
});

describe('overlays step refuses, with one line and before writing anything,', () => {
  const refusals: { name: string; spec: Spec; message: RegExp }[] = [
    {
      name: 'a symlink under boot/',
      spec: { 'boot/zImage': { link: 'Image' } },
      message: /boot\/zImage is a symlink but the boot partition is FAT/,
    },
    {
      name: 'a fifo',
      spec: { 'rootfs/etc/pipe': { fifo: true } },
      message: /rootfs\/etc\/pipe is a named pipe \(fifo\); overlays hold only files, directories and symlinks/,
    },
    {
      name: 'a file where the image has a directory',
      spec: { 'rootfs/etc/ssh': 'oops' },
      message: /rootfs\/etc\/ssh is a file but \/etc\/ssh in the image is a dir/,
    },
    {
      name: 'a modes line for a path not in the overlay',
      spec: { 'rootfs/etc/motd': 'hi', 'rootfs.modes': '/etc/mtod 0600\n' },
      message: /lists \/etc\/mtod, which is not in/,
    },
    {
      name: 'a modes line that climbs with ..',
      spec: { 'rootfs/etc/motd': 'hi', 'rootfs.modes': '/etc/../etc/motd 0600\n' },
      message: /rootfs\.modes line 1: "\/etc\/\.\.\/etc\/motd" is not an absolute, normalized path/,
    },
    {
      name: 'a modes line with a bad mode',
      spec: { 'rootfs/etc/motd': 'hi', 'rootfs.modes': '/etc/motd rw-r--r--\n' },
      message: /line 1: "rw-r--r--" is not an octal mode/,
    },
    {
      name: 'a modes line with an owner beyond 32 bits',
      spec: { 'rootfs/etc/motd': 'hi', 'rootfs.modes': '/etc/motd 0600 0:4294967296\n' },
      message: /line 1: "0:4294967296" has an id above 4294967294, the largest an owner can be/,
    },
    {
      name: 'a modes line for a symlink',
      spec: { 'rootfs/etc/l': { link: 'motd' }, 'rootfs.modes': '/etc/l 0600\n' },
      message: /symlinks have no mode of their own/,
    },
    {
      name: 'a modes line changing a directory the image has',
      spec: { 'rootfs/root/x': 'x', 'rootfs.modes': '/root 0755\n' },
      message: /\/root already exists in the image as 0700 0:0/,
    },
    {
      name: 'a template override that shadows nothing',
      spec: { 'templates/readonly-root/sbin/overlay-int.mustache': 'x' },
      message: /overlay-int\.mustache overrides no template/,
    },
    {
      name: 'two boot names that FAT sees as one',
      spec: { 'boot/README.txt': 'a', 'boot/readme.TXT': 'b' },
      message: /are the same name on FAT/,
    },
    { name: 'a FAT name with a reserved character', spec: { 'boot/what?.txt': 'a' }, message: /FAT names cannot hold/ },
  ];
  for (const r of refusals) {
    it(r.name, async () => {
      const run = patchFixture([overlaysStep(await makeOverlay(r.spec))]);
      await expect(run).rejects.toThrow(UserError);
      await expect(run).rejects.toThrow(r.message);
      await expect(run).rejects.not.toThrow(/\n/);
    });
  }

  it('a file whose path passes through a symlink in the image, naming the link and its target', async () => {
    // First an overlay makes /etc/foo a link to /tmp; a second one tries to write /etc/foo/bar through it.
    const first = await patchFixture([overlaysStep(await makeOverlay({ 'rootfs/etc/foo': { link: '/tmp' } }))]);
    expect(await debugfsStat(first.img, '/etc/foo')).toMatchObject({ type: 'symlink', target: '/tmp' });
    const second = patchFixture(
      [overlaysStep(await makeOverlay({ 'rootfs/etc/foo/bar': 'through the link' }))],
      {},
      { img: first.img, dir: first.dir },
    );
    await expect(second).rejects.toThrow(UserError);
    await expect(second).rejects.toThrow(
      /\/etc\/foo is a symlink in the image \(-> \/tmp\) and overlays never write through symlinks: put these files under \/tmp instead/,
    );
    expect(await debugfsStat(first.img, '/tmp/bar')).toBeUndefined();
    expect(await debugfsStat(first.img, '/etc/foo')).toMatchObject({ type: 'symlink', target: '/tmp' });
  });
});

describe('an overlay file whose name is not UTF-8', () => {
  it('is refused in one line naming its directory and bytes, before the image is opened', async () => {
    const root = await tempDir();
    const etc = join(root, 'rootfs', 'etc');
    await mkdir(etc, { recursive: true });
    // "caf\xe9": Latin-1, as an old archive or a FAT stick may name a file.
    await writeFile(Buffer.concat([Buffer.from(`${etc}/caf`), Buffer.from([0xe9])]), 'x');
    const fixture = patchFixture([overlaysStep(root)], {});
    await expect(fixture).rejects.toThrow(UserError);
    await expect(fixture).rejects.toThrow(/rootfs\/etc holds a file whose name is not UTF-8 \(bytes 636166e9\); rename it/);
  });
});
