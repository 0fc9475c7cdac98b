/**
 * Raspberry Pi OS Lite images, made as pi-gen makes them (test/fixtures/make-raspios-image.sh),
 * through the real build: what the firmware, the kernel and systemd will read, checked with
 * mtools, debugfs, e2fsck and fsck.fat.
 */
import { execFileSync } from 'node:child_process';
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { resolveConfig } from '../src/config/load.js';
import { REPO, runScript } from './support/cli.js';
import { debugfsCat, debugfsStat, dumpe2fsHeader } from './support/debugfs.js';
import { e2fsckClean, fsckFatClean } from './support/fsck.js';
import { copyOfStockImage, type FixtureVariant, partitionOffsets, stockImage, tempDir } from './support/images.js';
import { mtypeBoot, mwriteBoot } from './support/mtools.js';
import { referenceDir, referenceText } from './support/reference.js';
import { sha256File } from './support/sha256.js';
import { buildWithStandInBundle } from './support/stand-in-build.js';

const SECTOR = 512;
const DISK_ID = '5e3da6a1';
const RELEASES = [
  ['raspios-bookworm', 'bookworm', 16384],
  ['raspios-bookworm-4m', 'bookworm', 8192],
  ['raspios-trixie', 'trixie', 16384],
] as const satisfies readonly [FixtureVariant, string, number][];

/** The lines config.txt applies to every board: before any filter, and under [all]. */
function unconditionalLines(configTxt: string): string[] {
  let all = true;
  return configTxt.split('\n').filter((line) => {
    const filter = /^\[(.*)\]$/.exec(line.trim());
    if (filter) all = filter[1] === 'all';
    return all && !filter && line.trim() !== '' && !line.startsWith('#');
  });
}

const build = (input: string, out: string, config: Record<string, unknown> = {}, flags: string[] = []) =>
  buildWithStandInBundle(input, out, 'pi-builder', config, flags);

describe.each(RELEASES)('%s fixture', (variant, suite, bootStart) => {
  it("is laid out as pi-gen lays it out, with pi-gen's boot files", async () => {
    const img = await stockImage(variant);
    const table = await partitionOffsets(img);
    expect(table.id).toBe(`0x${DISK_ID}`);
    expect(table.partitions.slice(0, 1)).toEqual([{ number: 1, offset: bootStart * SECTOR, size: 512 * 2 ** 20, type: 'c' }]);
    expect(table.partitions[1]).toMatchObject({ number: 2, offset: (bootStart + 1048576) * SECTOR, type: '83' });
    expect(await mtypeBoot(img, 'config.txt')).toBe(referenceText(`raspberrypi/${suite}/config.txt`));
    const cmdline = await mtypeBoot(img, 'cmdline.txt');
    expect(cmdline.split('\n')).toHaveLength(2);
    expect(cmdline).toContain(`root=PARTUUID=${DISK_ID}-02 `);
    expect(await debugfsCat(img, '/etc/fstab')).toContain(`PARTUUID=${DISK_ID}-01  /boot/firmware  vfat`);
    expect((await dumpe2fsHeader(img))['Filesystem volume name']).toBe('rootfs');
    expect(await fsckFatClean(img)).toMatchObject({ ok: true });
    expect(await e2fsckClean(img)).toMatchObject({ ok: true });
  });
});

describe('the fixture maker', () => {
  it('trixie is byte-identical when made again (each release takes seconds to make)', async () => {
    const dir = await tempDir();
    const again = join(dir, 'again.img');
    execFileSync('bash', [join(REPO, 'test/fixtures/make-raspios-image.sh'), again, 'trixie'], {
      env: { ...process.env, REFERENCE_DIR: referenceDir() },
      stdio: 'pipe',
    });
    expect(await sha256File(again)).toBe(await sha256File(await stockImage('raspios-trixie')));
  });
});

describe.each(RELEASES)('a build of %s', (variant, suite, _bootStart) => {
  let out: string;
  let img: string;
  let summary: string;
  beforeAll(async () => {
    out = await tempDir();
    const run = await build(await stockImage(variant), out);
    expect(run.code).toBe(0);
    summary = run.stdout;
    img = join(out, 'pi-builder.img');
  });

  it('names the board and brings usb0 up through NetworkManager', () => {
    expect(summary).toMatch(/^ {2}board +Raspberry Pi 4, Pi 5, Zero 2 W \(Raspberry Pi OS Lite arm64/m);
    expect(summary).toMatch(/^ {2}usb0 +networkmanager from \/etc\/NetworkManager\/system-connections\/usb0\.nmconnection$/m);
  });

  it('gives a host kit for the Pi: its port in the README, and the data image left to the device (its kernel has the mainline overlay)', async () => {
    const readme = await readFile(join(out, 'host/README.md'), 'utf8');
    expect(readme).toContain(
      "At the board (raspberrypi in the table of boards), the cable goes\ninto: 'USB-C power port (Pi 4, Pi 5); the micro-USB port marked USB (Zero 2 W)'.",
    );
    expect(readme).toContain('It powers the board and is its only network.');
    expect(readme).not.toContain('mkfs.btrfs');
    expect(await readFile(join(out, 'host/install.sh'), 'utf8')).not.toContain('pi-builder.btrfs');
  });

  it('config.txt: the controller in device mode and no video driver for every board, the conditional sections untouched', async () => {
    const stock = referenceText(`raspberrypi/${suite}/config.txt`);
    const configTxt = await mtypeBoot(img, 'config.txt');
    const all = unconditionalLines(configTxt);
    expect(all.filter((line) => line.startsWith('dtoverlay='))).toEqual(['dtoverlay=dwc2,dr_mode=peripheral']);
    expect(all).toContain('gpu_mem=16');
    expect(configTxt).toContain('\n#dtoverlay=vc4-kms-v3d\n');
    // pi-gen's [cm5] host-mode line stays where it is, under [cm5].
    expect(configTxt).toContain('[cm5]\ndtoverlay=dwc2,dr_mode=host\n');
    // Lines added and one commented out: every other stock line is still there, in its place.
    const added = new Set(['gpu_mem=16', 'dtoverlay=dwc2,dr_mode=peripheral', '#dtoverlay=vc4-kms-v3d']);
    expect(configTxt.split('\n').filter((line) => !added.has(line) && !line.startsWith('# odroid-buildx-image'))).toEqual(
      stock.split('\n').filter((line) => line !== 'dtoverlay=vc4-kms-v3d'),
    );
  });

  it("cmdline.txt: one line, the overlay's init= instead of the first-boot one, the gadget modules, root by PARTUUID", async () => {
    const cmdline = await mtypeBoot(img, 'cmdline.txt');
    expect(cmdline.endsWith('\n')).toBe(true);
    expect(cmdline.trimEnd()).not.toContain('\n');
    const args = cmdline.trim().split(' ');
    expect(args.filter((arg) => arg.startsWith('init='))).toEqual(['init=/sbin/overlay-init']);
    expect(args).toEqual(expect.arrayContaining([`root=PARTUUID=${DISK_ID}-02`, 'ro', 'modules-load=dwc2,g_ether', 'fsck.mode=skip']));
    expect(args).not.toContain('resize');
    expect(args).not.toContain('rw');
    expect((await debugfsStat(img, '/usr/sbin/overlay-init'))?.type).toBe('regular');
  });

  it('g_ether with the fixed MAC pair, usb0 managed by NetworkManager', async () => {
    const config = resolveConfig({ name: 'pi-builder' });
    expect(await debugfsCat(img, '/etc/modprobe.d/usb-gadget.conf')).toContain(
      `options g_ether dev_addr=${config.usb.deviceMac} host_addr=${config.usb.hostMac} use_eem=0`,
    );
    expect(await debugfsCat(img, '/etc/NetworkManager/system-connections/usb0.nmconnection')).toContain(
      `address1=${config.network.address}`,
    );
    expect(await debugfsCat(img, '/etc/udev/rules.d/86-usb0-networkmanager.rules')).toMatch(/NM_UNMANAGED}="0"/);
  });

  it('first boot: no wizard, no new host keys, no resize, no cloud-init, no competing gadget', async () => {
    for (const unit of ['userconfig.service', 'regenerate_ssh_host_keys.service']) {
      expect(await debugfsStat(img, `/etc/systemd/system/${unit}`)).toMatchObject({ type: 'symlink', target: '/dev/null' });
      expect(await debugfsStat(img, `/etc/systemd/system/multi-user.target.wants/${unit}`)).toBeUndefined();
    }
    const trixie = suite === 'trixie';
    expect((await debugfsStat(img, '/etc/cloud/cloud-init.disabled'))?.type).toBe(trixie ? 'regular' : undefined);
    for (const unit of ['rpi-resize.service', 'rpi-usb-gadget.service']) {
      expect((await debugfsStat(img, `/etc/systemd/system/${unit}`))?.target).toBe(trixie ? '/dev/null' : undefined);
    }
    // Logins take keys only: every password stays locked.
    expect((await debugfsCat(img, '/etc/shadow')).split('\n').filter((line) => /^[^:]+:[^*!:]/.test(line))).toEqual([]);
  });

  it('is clean for e2fsck and fsck.fat, and inspect shows what the boot will follow', async () => {
    expect(await e2fsckClean(img)).toMatchObject({ ok: true });
    expect(await fsckFatClean(img)).toMatchObject({ ok: true });
    const run = await runScript('src/cli/inspect-command.ts', ['--input', img]);
    expect(run.code).toBe(0);
    expect(run.stdout).toMatch(/^board +Raspberry Pi 4, Pi 5, Zero 2 W/m);
    expect(run.stdout).toMatch(/^ {2}kernel command line +.*init=\/sbin\/overlay-init.* +\[boot:\/cmdline\.txt\]$/m);
    expect(run.stdout).toMatch(/^ {2}overlay +overlay over the read-only root/m);
  });

  it('rebuilt from its own output, changes no boot file', async () => {
    const again = await tempDir();
    expect((await build(img, again)).code).toBe(0);
    for (const file of ['config.txt', 'cmdline.txt']) {
      expect(await mtypeBoot(join(again, 'pi-builder.img'), file)).toBe(await mtypeBoot(img, file));
    }
    expect(await debugfsCat(join(again, 'pi-builder.img'), '/etc/fstab')).toBe(await debugfsCat(img, '/etc/fstab'));
  });
});

describe('Raspberry Pi power profiles', () => {
  it('usb3-0.9A: two cores and arm_freq=1000 for every board; full takes both back', async () => {
    const out = await tempDir();
    expect((await build(await stockImage('raspios-bookworm'), out, { power: { profile: 'usb3-0.9A' } })).code).toBe(0);
    const img = join(out, 'pi-builder.img');
    expect(unconditionalLines(await mtypeBoot(img, 'config.txt'))).toContain('arm_freq=1000');
    expect((await mtypeBoot(img, 'cmdline.txt')).trim().split(' ')).toContain('maxcpus=2');
    const back = await tempDir();
    expect((await build(img, back)).code).toBe(0);
    const backImg = join(back, 'pi-builder.img');
    expect(await mtypeBoot(backImg, 'config.txt')).not.toMatch(/^arm_freq=/m);
    expect(await mtypeBoot(backImg, 'cmdline.txt')).not.toContain('maxcpus=');
  });
});

// --release itself is the C2's to test (test/release.test.ts): it reads and compresses whatever
// image it is given, and a Pi image is three times the C2 fixture's size. A Pi fleet that travels
// gets its checksums.
describe('Raspberry Pi OS through --fleet', () => {
  it('--fleet 2 --checksum: two images, each with its own MACs in the gadget options', async () => {
    const out = await tempDir();
    const run = await build(await stockImage('raspios-bookworm-4m'), out, {}, ['--fleet', '2', '--checksum']);
    expect(run.code).toBe(0);
    const files = await readdir(out);
    expect(files).toEqual(
      expect.arrayContaining(['pi-builder-1.img', 'pi-builder-2.img', 'pi-builder-1.img.sha256', 'pi-builder-2.img.sha256']),
    );
    execFileSync('sha256sum', ['-c', 'pi-builder-1.img.sha256', 'pi-builder-2.img.sha256'], { cwd: out });
    const options = await Promise.all(
      ['pi-builder-1', 'pi-builder-2'].map((name) => debugfsCat(join(out, `${name}.img`), '/etc/modprobe.d/usb-gadget.conf')),
    );
    expect(options[0]).not.toBe(options[1]);
    for (const name of ['pi-builder-1', 'pi-builder-2']) {
      expect(await mtypeBoot(join(out, `${name}.img`), 'cmdline.txt')).toContain('init=/sbin/overlay-init');
    }
  });

  it('refuses an image whose cmdline.txt boots a PARTUUID of another disk, input untouched', async () => {
    const dir = await tempDir();
    const input = await copyOfStockImage('raspios-bookworm', dir);
    const cmdline = (await mtypeBoot(input, 'cmdline.txt')).replace(`PARTUUID=${DISK_ID}-02`, 'PARTUUID=0badc0de-02');
    await mwriteBoot(input, 'cmdline.txt', cmdline);
    const before = await sha256File(input);
    const out = await tempDir();
    const run = await build(input, out);
    expect(run.code).not.toBe(0);
    expect(run.stderr.split('\n').filter((line) => line.startsWith('error:'))).toEqual([
      `error: cmdline.txt boots root=PARTUUID=0badc0de-02 but the disk identifier of ${input} is 0x${DISK_ID}: the image would not boot; fix cmdline.txt or pass another image`,
    ]);
    expect(await sha256File(input)).toBe(before);
    expect(await readdir(out)).not.toContain('pi-builder.img');
  });

  it('refuses a config board the image is not for, in one line, leaving nothing at the output', async () => {
    const out = await tempDir();
    const run = await build(await stockImage('raspios-bookworm'), out, { board: 'odroid-c2' });
    expect(run.code).not.toBe(0);
    expect(run.stderr.split('\n').filter((line) => line.startsWith('error:'))).toEqual([
      expect.stringMatching(/^error: board "odroid-c2" boots from c2-boot\.ini but this image has config\.txt: .*"raspberrypi"/),
    ]);
    expect((await readdir(out)).filter((file) => file.endsWith('.img'))).toEqual([]);
  });
});
