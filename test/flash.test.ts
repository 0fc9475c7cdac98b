/**
 * npm run flash on loop devices standing in for cards (the kernel calls them non-removable, so
 * the writes pass --allow-non-removable; the refusal of a non-removable device is tested
 * without it). The cards written start full of random bytes: what the image leaves as holes must not
 * show through, so the card's file systems are checked with e2fsck and fsck.fat and their files
 * compared with the image's.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { chmod, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sha256File } from '../src/checksum.js';
import { configWithFakeBundle } from './docker-bundle-fixture.js';
import { buildImage, REPO, runScript } from './support/cli.js';
import { e2fsckClean, fsckFatClean } from './support/fsck.js';
import { type FixtureVariant, partitionOffsets, SMALL_SIZE_MIB, skipWithout, stockImage, tempDir } from './support/images.js';
import { dumpPartitions } from './support/mtools.js';

const IMAGE_MIB = SMALL_SIZE_MIB;

const noLoop = skipWithout({
  'loop devices (losetup -f as root)': spawnSync('losetup', ['-f'], { encoding: 'utf8' }).status === 0 && process.getuid?.() === 0,
});

const flash = (args: string[]) => runScript('src/cli/flash-command.ts', args);
const sh = (command: string, args: string[]) => execFileSync(command, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] }).trim();
const loops: string[] = [];

/**
 * The flashed card's partitions as device nodes. The tool asks the kernel to read the new table
 * (BLKRRPART); where that does not reach a loop device (some containers), partx adds them.
 */
function partitionsOf(device: string): void {
  spawnSync('partx', ['-a', device]);
  sh('test', ['-b', `${device}p1`]);
}

/** A loop device over a file of `mib` MiB: full of random bytes, or sparse (zeros) for the refusals. */
async function card(
  dir: string,
  name: string,
  mib: number,
  fill: 'random' | 'sparse' = 'sparse',
): Promise<{ file: string; device: string }> {
  const file = join(dir, name);
  if (fill === 'random') sh('dd', ['if=/dev/urandom', `of=${file}`, 'bs=1M', `count=${mib}`, 'status=none']);
  else sh('truncate', ['-s', `${mib}M`, file]);
  const device = sh('losetup', ['-f', '--show', '-P', file]);
  loops.push(device);
  return { file, device };
}

/**
 * A fixture image holding, besides its files, one whose middle 16 KiB are zeros: made sparse
 * like the build's images, that block is a hole of the image but data of the file.
 */
async function image(dir: string, variant: FixtureVariant): Promise<string> {
  const path = join(dir, `${variant}.img`);
  sh('cp', ['--sparse=always', await stockImage(variant, { sizeMiB: IMAGE_MIB }), path]);
  const zeros = join(dir, 'zeros.bin');
  await writeFile(zeros, Buffer.concat([Buffer.alloc(8192, 0x5a), Buffer.alloc(16384), Buffer.alloc(5000, 0xa5)]));
  const { partitions } = await partitionOffsets(path);
  const rootfs = partitions.find((p) => p.number === 2)!;
  sh('debugfs', ['-w', '-R', `write ${zeros} /zeros.bin`, `${path}?offset=${rootfs.offset}`]);
  sh('cp', ['--sparse=always', path, `${path}.sparse`]);
  sh('mv', [`${path}.sparse`, path]);
  return path;
}

async function expectCardHoldsImage(cardFile: string, img: string) {
  const e2fsck = await e2fsckClean(cardFile);
  expect(e2fsck.output, 'e2fsck -fn').toBeTruthy();
  expect(e2fsck.ok, e2fsck.output).toBe(true);
  const fat = await fsckFatClean(cardFile);
  expect(fat.ok, fat.output).toBe(true);
  const [onCard, inImage] = [await dumpPartitions(cardFile), await dumpPartitions(img)];
  const diff = spawnSync('diff', ['-r', '--no-dereference', inImage, onCard], { encoding: 'utf8' });
  expect(diff.stdout + diff.stderr).toBe('');
  expect(diff.status).toBe(0);
}

afterAll(() => {
  for (const device of loops) spawnSync('losetup', ['-d', device]);
});

describe.skipIf(noLoop)('npm run flash', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await tempDir();
  });

  for (const variant of ['stock', 'fat16'] as const) {
    it(`writes the ${variant} image over random bytes: the card's file systems check clean and hold the image's files`, async () => {
      const img = await image(await tempDir(), variant);
      const target = await card(dir, `${variant}.card`, IMAGE_MIB + 32, 'random');
      const result = await flash([img, target.device, '--yes', '--allow-non-removable']);
      expect(result.stderr).toMatch(/MiB\/s/);
      expect(result.code, result.stderr).toBe(0);
      expect(result.stdout).toMatch(
        new RegExp(`^flashed ${img} to ${target.device}: \\d+ bytes in \\d+ ranges written and verified by reading them back\\n$`),
      );
      await expectCardHoldsImage(target.file, img);
    });
  }

  it('with the .bmap beside the image: checks its checksums and refuses an image that does not match it', async () => {
    const work = await tempDir();
    const img = await image(work, 'stock');
    const bmap = join(work, 'stock.bmap');
    sh('bmaptool', ['-q', 'create', '-o', bmap, img]);
    const target = await card(dir, 'bmap.card', IMAGE_MIB, 'random');
    const result = await flash([img, target.device, '--yes', '--allow-non-removable']);
    expect(result.code, result.stderr).toBe(0);
    expect(result.stderr).toContain(`data from ${bmap}`);
    expect(result.stdout).toContain("the image matched its bmap's checksums");
    await expectCardHoldsImage(target.file, img);

    // One byte of the image's data changed after the bmap was made.
    const { partitions } = await partitionOffsets(img);
    sh('dd', ['if=/dev/urandom', `of=${img}`, 'bs=1', 'count=1', `seek=${partitions[0].offset + 3}`, 'conv=notrunc', 'status=none']);
    const other = await card(dir, 'bmap2.card', IMAGE_MIB);
    const refused = await flash([img, other.device, '--yes', '--allow-non-removable']);
    expect(refused.code).not.toBe(0);
    expect(refused.stderr).toMatch(/^error: .*stock\.img does not match its \.bmap at bytes \d+-\d+/m);
  });

  it('a --release build flashed by bmaptool with its .bmap over random bytes: the file systems check clean', async () => {
    // bmaptool writes only what the .bmap maps, so the .bmap must map every block the file
    // systems use, zeros included, not only the blocks that hold data.
    const out = await tempDir();
    const config = await configWithFakeBundle(await tempDir());
    const stock = await stockImage('stock', { sizeMiB: IMAGE_MIB });
    const run = await buildImage(['--input', stock, '--out', out, '--name', 'rel', '--release', '--config', config]);
    expect(run.code, run.stderr).toBe(0);
    const target = await card(dir, 'bmaptool.card', IMAGE_MIB, 'random');
    sh('bmaptool', ['-q', 'copy', '--bmap', join(out, 'rel.bmap'), join(out, 'rel.img.xz'), target.device]);
    await expectCardHoldsImage(target.file, join(out, 'rel.img'));
  });

  describe('refuses, in one line, leaving the device as it was', () => {
    let img: string;
    beforeAll(async () => {
      img = await image(await tempDir(), 'stock');
    });

    const refusal = async (args: string[], pattern: RegExp, untouched?: string) => {
      const before = untouched && (await sha256File(untouched));
      const result = await flash(args);
      expect(result.code).not.toBe(0);
      expect(result.stdout).toBe('');
      expect(result.stderr).toMatch(/^error: [^\n]*\n$/);
      expect(result.stderr).toMatch(pattern);
      if (untouched) expect(await sha256File(untouched)).toBe(before);
    };

    it('a path that is not a block device', async () => {
      const file = join(dir, 'plain-file');
      sh('truncate', ['-s', `${IMAGE_MIB}M`, file]);
      await refusal([img, file, '--yes', '--allow-non-removable'], /is not a block device/, file);
    });

    it('a compressed image', async () => {
      const target = await card(dir, 'for-xz.card', IMAGE_MIB);
      const xz = join(dir, 'image.img.xz');
      await writeFile(xz, Buffer.concat([Buffer.from([0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00]), Buffer.alloc(4096, 1)]));
      await refusal(
        [xz, target.device, '--yes', '--allow-non-removable'],
        /image\.img\.xz is xz-compressed; pass the \.img beside it/,
        target.file,
      );
    });

    it('a partition rather than the whole device', async () => {
      const target = await card(dir, 'partitioned.card', IMAGE_MIB + 32);
      expect((await flash([img, target.device, '--yes', '--allow-non-removable'])).code).toBe(0);
      partitionsOf(target.device);
      await refusal(
        [img, `${target.device}p1`, '--yes', '--allow-non-removable'],
        /is a partition \(loop\d+p1\); pass the whole device/,
        target.file,
      );
    });

    it('a device with a partition mounted', async () => {
      const target = await card(dir, 'mounted.card', IMAGE_MIB + 32);
      expect((await flash([img, target.device, '--yes', '--allow-non-removable'])).code).toBe(0);
      partitionsOf(target.device);
      const mountPoint = join(dir, 'mnt');
      await mkdir(mountPoint, { recursive: true });
      // The ext4 root: vfat may be missing from a container's kernel, ext4 hardly.
      sh('mount', ['-o', 'ro,noload', `${target.device}p2`, mountPoint]);
      try {
        await refusal(
          [img, target.device, '--yes', '--allow-non-removable'],
          new RegExp(`is mounted \\(${target.device}p2 on ${mountPoint}\\); unmount it first`),
          target.file,
        );
      } finally {
        sh('umount', [mountPoint]);
      }
    });

    it('a device smaller than the image', async () => {
      const target = await card(dir, 'small.card', IMAGE_MIB - 1);
      await refusal(
        [img, target.device, '--yes', '--allow-non-removable'],
        /holds \d+ bytes .*less than the image's \d+ .*; use a larger card/,
        target.file,
      );
    });

    it('a non-removable device without --allow-non-removable', async () => {
      const target = await card(dir, 'fixed.card', IMAGE_MIB);
      await refusal([img, target.device, '--yes'], /is not a removable device.*pass --allow-non-removable/, target.file);
    });

    it('a write-protected card (its lock switch on), found before anything is written', async () => {
      const file = join(dir, 'locked.card');
      sh('truncate', ['-s', `${IMAGE_MIB}M`, file]);
      const device = sh('losetup', ['-f', '--show', '-r', file]);
      loops.push(device);
      await refusal([img, device, '--yes', '--allow-non-removable'], /is write-protected: the card's lock switch is on/, file);
    });

    it('a user without the right to write the device: run it with sudo', async () => {
      const target = await card(dir, 'denied.card', IMAGE_MIB);
      // nobody must be able to read the image and reach it, as a user's own build would be.
      const shared = await mkdtemp(join(tmpdir(), 'odroid-flash-'));
      await chmod(shared, 0o755);
      const readable = join(shared, 'image.img');
      sh('cp', ['--sparse=always', img, readable]);
      await chmod(readable, 0o644);
      const before = await sha256File(target.file);
      const result = await runScript('src/cli/flash-command.ts', [readable, target.device, '--yes', '--allow-non-removable'], {}, [
        'setpriv',
        '--reuid=65534',
        '--regid=65534',
        '--clear-groups',
      ]);
      await rm(shared, { recursive: true, force: true });
      expect(result.stderr).toBe(`error: permission denied on ${target.device}; run it with sudo\n`);
      expect(result.code).toBe(1);
      expect(await sha256File(target.file)).toBe(before);
    });

    it('no --yes when standard input is not a terminal', async () => {
      const target = await card(dir, 'unconfirmed.card', IMAGE_MIB);
      await refusal([img, target.device, '--allow-non-removable'], /standard input is not a terminal.*; pass --yes/, target.file);
    });

    it('with a terminal: shows the device and its partitions, and writes only when the answer is yes', async () => {
      const target = await card(dir, 'asked.card', IMAGE_MIB + 32);
      expect((await flash([img, target.device, '--yes', '--allow-non-removable'])).code).toBe(0);
      partitionsOf(target.device);
      // script(1) runs the command on a pseudo-terminal and types what it reads from its stdin.
      const asked = (answer: string) =>
        spawnSync(
          'script',
          ['-qec', `node launch.mjs src/cli/flash-command.ts ${img} ${target.device} --allow-non-removable`, '/dev/null'],
          {
            cwd: REPO,
            input: `${answer}\n`,
            encoding: 'utf8',
          },
        );
      const before = await sha256File(target.file);
      const no = asked('n');
      expect(no.status).not.toBe(0);
      expect(no.stdout).toMatch(new RegExp(`${target.device}: .*, ${IMAGE_MIB + 32} MiB`));
      // lsblk names each partition with its size (the file system type needs udev, which a container may lack).
      expect(no.stdout).toMatch(/loop\d+p1 +128M/);
      expect(no.stdout).toMatch(/loop\d+p2 +31M/);
      expect(no.stdout).toContain(`Write ${img} to ${target.device}? Everything on it is lost. [y/N]`);
      expect(no.stdout).toContain(`error: not confirmed; ${target.device} is untouched`);
      expect(await sha256File(target.file)).toBe(before);
      const yes = asked('y');
      expect(yes.status, yes.stdout).toBe(0);
      expect(yes.stdout).toContain('written and verified');
    });
  });
});
