import { execFile as execFileCallback, spawnSync } from 'node:child_process';
import { open, readFile, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type DebugfsStat, debugfsCat, debugfsStat, dumpe2fsHeader } from './support/debugfs.js';
import { e2fsckClean, fsckFatClean } from './support/fsck.js';
import {
  copyOfStockImage,
  DEFAULT_SIZE_MIB,
  FIXTURE_VARIANTS,
  type FixtureVariant,
  partitionOffsets,
  ROOT_UUID,
  stockImage,
  tempDir,
} from './support/images.js';
import { mtypeBoot } from './support/mtools.js';
import { referenceText } from './support/reference.js';
import { sha256File } from './support/sha256.js';

const execFile = promisify(execFileCallback);
const SECTOR = 512;
const MiB = 1024 * 1024;
const DISK = DEFAULT_SIZE_MIB * MiB;

async function readBytes(path: string, offset: number, length: number): Promise<Buffer> {
  const handle = await open(path, 'r');
  try {
    const buffer = Buffer.alloc(length);
    await handle.read(buffer, 0, length, offset);
    return buffer;
  } finally {
    await handle.close();
  }
}

const allZero = (buffer: Buffer) => buffer.every((byte) => byte === 0);

const images = {} as Record<FixtureVariant, string>;
let scratch: string;
let stockSha: Promise<string> | undefined;
const stockImageSha = () => (stockSha ??= sha256File(images.stock));

beforeAll(async () => {
  for (const variant of FIXTURE_VARIANTS) images[variant] = await stockImage(variant);
  scratch = await tempDir();
});

afterAll(async () => {
  await rm(scratch, { recursive: true, force: true });
});

describe('stock fixture: HardKernel layout', () => {
  it('is a sparse file of the size asked for, with the stock MBR partitions', async () => {
    const img = images.stock;
    const { size, blocks } = await stat(img);
    expect(size).toBe(DISK);
    expect(blocks * 512).toBeLessThan(16 * MiB);
    const table = await partitionOffsets(img);
    expect(table.label).toBe('dos');
    expect(table.partitions).toEqual([
      { number: 1, offset: 2048 * SECTOR, size: 262144 * SECTOR, type: 'c' },
      { number: 2, offset: 264192 * SECTOR, size: DISK - 264192 * SECTOR, type: '83' },
    ]);
  });

  it('keeps boot loader bytes around an intact partition table', async () => {
    const img = images.stock;
    const first = await readBytes(img, 0, 2048 * SECTOR);
    expect(allZero(first.subarray(0, 442))).toBe(false);
    expect(allZero(first.subarray(SECTOR, 97 * SECTOR))).toBe(false);
    expect(allZero(first.subarray(97 * SECTOR))).toBe(false);
    expect(first.subarray(510, 512)).toEqual(Buffer.from([0x55, 0xaa]));
    // The table entries sfdisk reads come from bytes 446..509, untouched by the boot loader.
    expect(first.readUInt8(446 + 4)).toBe(0x0c);
    expect(first.readUInt32LE(446 + 8)).toBe(2048);
    expect(first.readUInt8(446 + 16 + 4)).toBe(0x83);
    expect(first.readUInt32LE(446 + 16 + 8)).toBe(264192);
    // bl1 overwrites the low half of the disk identifier, as on the real image.
    expect((await partitionOffsets(img)).id).toBe(`0x${first.readUInt32LE(440).toString(16).padStart(8, '0')}`);
  });

  it("holds HardKernel's real boot.ini and boot.ini.default byte for byte in a FAT32 labelled BOOT", async () => {
    const img = images.stock;
    expect(await mtypeBoot(img, '/boot.ini')).toBe(referenceText('odroid-c2/boot.ini'));
    expect(await mtypeBoot(img, '/boot.ini.default')).toBe(referenceText('odroid-c2/boot.ini.default'));
    for (const standIn of ['/Image', '/meson64_odroidc2.dtb', '/uInitrd']) {
      expect((await mtypeBoot(img, standIn)).length).toBeGreaterThan(0);
    }
    const bootSector = await readBytes(img, 2048 * SECTOR, SECTOR);
    expect(bootSector.toString('latin1', 0x47, 0x52)).toBe('BOOT       ');
    expect(bootSector.toString('latin1', 0x52, 0x5a)).toBe('FAT32   ');
    // Hidden sectors = partition start, as on a FAT made inside a partition.
    expect(bootSector.readUInt32LE(0x1c)).toBe(2048);
    expect(bootSector.readUInt32LE(0x20)).toBe(262144);
    expect(await fsckFatClean(img)).toMatchObject({ ok: true });
  });

  it('has an ext4 rootfs with the stock UUID and label that e2fsck finds clean', async () => {
    const img = images.stock;
    const header = await dumpe2fsHeader(img);
    expect(header['Filesystem UUID']).toBe(ROOT_UUID);
    expect(header['Filesystem volume name']).toBe('rootfs');
    expect(header['Filesystem features'].split(' ')).toEqual(expect.arrayContaining(['has_journal', 'metadata_csum', '64bit']));
    expect(header['Filesystem features']).not.toContain('needs_recovery');
    expect(header['Block size']).toBe('4096');
    expect(await e2fsckClean(img)).toMatchObject({ ok: true });
  });

  it('has an Ubuntu 18.04 tree with the files the pipeline patches, all owned by root', async () => {
    const img = images.stock;
    expect(await debugfsCat(img, '/etc/fstab')).toBe(
      `UUID=${ROOT_UUID} / ext4 errors=remount-ro,noatime 0 1\nLABEL=BOOT /media/boot vfat defaults 0 1\n`,
    );
    expect(await debugfsCat(img, '/etc/hostname')).toBe('odroid\n');
    expect(await debugfsCat(img, '/usr/lib/os-release')).toContain('VERSION="18.04.3 LTS (Bionic Beaver)"');
    expect(await debugfsStat(img, '/etc/os-release')).toMatchObject({ type: 'symlink', target: '../usr/lib/os-release' });
    expect(await debugfsCat(img, '/etc/shadow')).toMatch(/^root:\$6\$/);
    expect(await debugfsCat(img, '/etc/network/interfaces')).toContain('source-directory /etc/network/interfaces.d');
    const sshd = await debugfsCat(img, '/etc/ssh/sshd_config');
    expect(sshd).toMatch(/^#PasswordAuthentication yes$/m);
    expect(sshd).toMatch(/^PermitRootLogin yes$/m);
    expect(await debugfsCat(img, '/etc/machine-id')).toBe('');
    expect(await debugfsCat(img, '/lib/modules/3.16.85-65/modules.dep')).toMatch(/^kernel\/drivers\/usb\/gadget\/g_ether\.ko:/m);

    const expected: [string, Partial<DebugfsStat>][] = [
      ['/', { type: 'directory', mode: 0o755 }],
      ['/etc/shadow', { type: 'regular', mode: 0o640, gid: 42 }],
      ['/etc/passwd', { type: 'regular', mode: 0o644, gid: 0 }],
      ['/tmp', { type: 'directory', mode: 0o1777 }],
      ['/root', { type: 'directory', mode: 0o700 }],
      ['/media/boot', { type: 'directory' }],
      ['/etc/network/interfaces.d', { type: 'directory' }],
      ['/usr/local/bin', { type: 'directory' }],
      ['/lib/systemd/systemd', { type: 'regular', mode: 0o755 }],
      ['/bin/sh', { type: 'regular', mode: 0o755 }],
      ['/sbin/init', { type: 'symlink', target: '/lib/systemd/systemd' }],
      ['/etc/systemd/system/multi-user.target.wants/ssh.service', { type: 'symlink', target: '/lib/systemd/system/ssh.service' }],
      ['/lib/systemd/system/apt-daily.timer', { type: 'regular' }],
      ['/lib/modules/3.16.85-65/kernel/drivers/usb/gadget/g_ether.ko', { type: 'regular' }],
      ['/lib/modules/3.16.85-65/kernel/fs/overlayfs/overlayfs.ko', { type: 'regular' }],
      ['/lib/modules/3.16.85-65/kernel/fs/aufs/aufs.ko', { type: 'regular' }],
    ];
    for (const [path, fields] of expected) {
      expect(await debugfsStat(img, path), path).toMatchObject({ uid: 0, gid: 0, ...fields });
    }
    expect(await debugfsStat(img, '/lib/modules/3.16.85-65/kernel/drivers/block/loop.ko')).toBeUndefined();
  });

  it('is byte-identical when built again', async () => {
    const again = join(scratch, 'again.img');
    await execFile('bash', [fileURLToPath(new URL('fixtures/make-stock-image.sh', import.meta.url)), again, 'stock'], {
      env: { ...process.env, DISK_SIZE_MIB: String(DEFAULT_SIZE_MIB) },
    });
    expect(await sha256File(again)).toBe(await stockImageSha());
  });

  it('is cached, and copied sparsely for tests that write', async () => {
    expect(await stockImage()).toBe(images.stock);
    expect(images.stock).toMatch(/\/\.cache\/fixtures\/stock-[0-9a-f]{12}\.img$/);
    const copy = await copyOfStockImage('stock', scratch);
    expect(copy).toBe(join(scratch, 'stock.img'));
    expect((await stat(copy)).blocks * 512).toBeLessThan(16 * MiB);
    expect(await sha256File(copy)).toBe(await stockImageSha());
  });
});

describe('image scripts', () => {
  it('pass shellcheck, following assemble-image.sh where they source it', () => {
    const scripts = [
      'fixtures/assemble-image.sh',
      'fixtures/rootfs-tree.sh',
      'fixtures/make-stock-image.sh',
      'fixtures/make-raspios-image.sh',
      'boot/make-debian-image.sh',
    ];
    const paths = scripts.map((script) => fileURLToPath(new URL(script, import.meta.url)));
    const check = spawnSync('shellcheck', ['-x', ...paths], { encoding: 'utf8' });
    expect(check.error).toBeUndefined();
    expect(check.stdout + check.stderr).toBe('');
    expect(check.status).toBe(0);
  });
});

describe('fixture variants', () => {
  it('fat16: the boot partition is FAT16 with MBR type 0x0e', async () => {
    const img = images.fat16;
    expect((await partitionOffsets(img)).partitions.map((p) => p.type)).toEqual(['e', '83']);
    const bootSector = await readBytes(img, 2048 * SECTOR, SECTOR);
    expect(bootSector.toString('latin1', 0x2b, 0x36)).toBe('BOOT       ');
    expect(bootSector.toString('latin1', 0x36, 0x3e)).toBe('FAT16   ');
    expect(await mtypeBoot(img, '/boot.ini')).toBe(referenceText('odroid-c2/boot.ini'));
    expect(await fsckFatClean(img)).toMatchObject({ ok: true });
    expect(await e2fsckClean(img)).toMatchObject({ ok: true });
  });

  it('legacy-ext4: the rootfs has neither metadata_csum nor 64bit', async () => {
    const img = images['legacy-ext4'];
    const features = (await dumpe2fsHeader(img))['Filesystem features'].split(' ');
    expect(features).toContain('has_journal');
    expect(features).not.toContain('metadata_csum');
    expect(features).not.toContain('64bit');
    expect(await e2fsckClean(img)).toMatchObject({ ok: true });
    expect(await debugfsCat(img, '/etc/hostname')).toBe('odroid\n');
  });

  it('dirty-journal: the rootfs says its journal needs recovery', async () => {
    const img = images['dirty-journal'];
    const header = await dumpe2fsHeader(img);
    expect(header['Filesystem UUID']).toBe(ROOT_UUID);
    expect(header['Filesystem features'].split(' ')).toContain('needs_recovery');
    expect((await e2fsckClean(img)).output).toMatch(/skipping journal recovery/);
  });

  it('gpt: the same two partitions in a GPT', async () => {
    const table = await partitionOffsets(images.gpt);
    expect(table.label).toBe('gpt');
    expect(table.partitions.map((p) => [p.offset / SECTOR, p.type])).toEqual([
      [2048, 'EBD0A0A2-B9E5-4433-87C0-68B6B72699C7'],
      [264192, '0FC63DAF-8483-4772-8E79-3D69D8477DE4'],
    ]);
    expect((await execFile('sfdisk', ['--verify', images.gpt])).stdout).toMatch(/No errors detected/);
    expect(await e2fsckClean(images.gpt)).toMatchObject({ ok: true });
  });

  it('no-ext4: an MBR with only the FAT partition', async () => {
    const table = await partitionOffsets(images['no-ext4']);
    expect(table.partitions).toEqual([{ number: 1, offset: 2048 * SECTOR, size: 262144 * SECTOR, type: 'c' }]);
    expect(await fsckFatClean(images['no-ext4'])).toMatchObject({ ok: true });
  });

  it('zero: 64 MiB of zeros without a partition table', async () => {
    const img = images.zero;
    expect((await stat(img)).size).toBe(64 * MiB);
    expect(allZero(await readFile(img))).toBe(true);
    await expect(partitionOffsets(img)).rejects.toThrow();
  });

  it("c4: the FAT holds HardKernel's C4 boot.ini and config.ini", async () => {
    const img = images.c4;
    expect(await mtypeBoot(img, '/boot.ini')).toBe(referenceText('odroid-c4/boot.ini'));
    expect(await mtypeBoot(img, '/config.ini')).toBe(referenceText('odroid-c4/config.ini'));
    await expect(mtypeBoot(img, '/boot.ini.default')).rejects.toThrow();
    expect(await fsckFatClean(img)).toMatchObject({ ok: true });
    expect((await dumpe2fsHeader(img))['Filesystem UUID']).toBe(ROOT_UUID);
  });
});
