/**
 * Boot-level proof (issue 4): a stock-like C2 image with a real Debian arm64 rootfs, patched by
 * the real `build-image`, boots under qemu-system-aarch64 with the command line its patched
 * boot.ini builds, and the device does what it promises: overlay root over a read-only rootfs,
 * g_ether with the configured MACs and usb0 address, Docker on the host's NFS share, persistence
 * across reboots, and surviving a power cut in the middle of Docker writing.
 *
 * Test-only additions to the image under test (test/boot/guest/, applied BEFORE the tool patches
 * it, never by the tool): dummy_hcd as the USB device controller, a static eth0 on QEMU's user
 * network, the check service and its settings, and a tiny container image.
 *
 * Run: npm run test:boot (as root; .ci/run lists the Debian packages). Serial logs and the
 * timing summary are kept in .cache/boot/logs/ (or $BOOT_CACHE/logs/).
 */
import { execFile as execFileCallback } from 'node:child_process';
import { existsSync } from 'node:fs';
import { cp, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildImage, REPO } from '../support/cli.js';
import { changedBlocks } from './image-diff.js';
import { type NfsServer, startNfsServer } from './nfs.js';
import { type BootFiles, type BootResult, bootFilesOf, bootImage, lastCheck, partitionOffsets } from './qemu.js';
import { writeTinyImage } from './tiny-image.js';

const execFile = promisify(execFileCallback);

/** BOOT_CACHE (as for the scripts) can keep the rootfs and bundle outside a fresh checkout. */
const CACHE = process.env.BOOT_CACHE ?? join(REPO, '.cache/boot');
const LOGS = join(CACHE, 'logs');
const NAME = 'boot-test';
const ROOT_UUID = 'e139ce78-9841-40fe-8823-96a304a09859';
/**
 * The build config. usb0 is on its own subnet with the default route through the host end of
 * the USB link, as on the board; the NFS server is QEMU's host address, which the guest reaches
 * through eth0's connected route (test/boot/guest/etc/network/interfaces.d/eth0), not usb0.
 */
const CONFIG = {
  name: NAME,
  usb: { deviceMac: '02:b0:07:00:00:02', hostMac: '02:b0:07:00:00:01', protocol: 'ecm' },
  network: { address: '10.0.3.2/24', gateway: '10.0.3.1', dns: ['10.0.2.3'] },
  nfs: { server: '10.0.2.2', export: '/srv/boot-test' },
  // full: eth0 carries the NFS traffic under QEMU, and the image has no C2 device tree for the
  // USB profiles to take the Ethernet out of.
  power: { profile: 'full' },
};
const BOOT_TIMEOUT_MS = 12 * 60_000;

const timings: [string, number][] = [];
/** Findings printed with the timings but not asserted. */
const notes: string[] = [];
async function timed<T>(what: string, fn: () => Promise<T>): Promise<T> {
  const start = performance.now();
  try {
    return await fn();
  } finally {
    timings.push([what, (performance.now() - start) / 1000]);
  }
}

async function run(command: string, args: string[]): Promise<string> {
  const { stdout } = await execFile(command, args, { cwd: REPO, maxBuffer: 64 << 20 });
  return stdout;
}

/** The names among `names` whose CHECK value is not "ok", with what the guest said. */
function notOk(result: BootResult | undefined, names: string[]): string[] {
  if (!result) return ['the boot did not run'];
  return names.filter((name) => lastCheck(result, name) !== 'ok').map((name) => `${name}: ${lastCheck(result, name) ?? 'no marker'}`);
}

async function guestTree(work: string, busybox: string): Promise<string> {
  const tree = join(work, 'guest');
  await cp(join(REPO, 'test/boot/guest'), tree, { recursive: true, verbatimSymlinks: true });
  const settings = [
    `DEVICE_MAC='${CONFIG.usb.deviceMac}'`,
    `HOST_MAC='${CONFIG.usb.hostMac}'`,
    `USB_ADDRESS='${CONFIG.network.address}'`,
    `NFS_SOURCE='${CONFIG.nfs.server}:${CONFIG.nfs.export}'`,
  ];
  await writeFile(
    join(tree, 'etc/boot-check.conf'),
    `# Written by test/boot/device.boot.ts from its build config.\n${settings.join('\n')}\n`,
  );
  await mkdir(join(tree, 'usr/local/share/boot-check'), { recursive: true });
  await writeTinyImage(busybox, join(tree, 'usr/local/share/boot-check/tiny.tar'), 'boot-check/tiny:1');
  return tree;
}

/**
 * No unit failed, and the poweroff was clean. builder-storage unmounts the data image and the
 * share before systemd would (its unit is ordered after their mount units); racing it, systemd
 * failed to unmount the share at every poweroff.
 */
async function expectCleanRun(result: BootResult): Promise<void> {
  expect(lastCheck(result, 'failed-units')).toBe('');
  expect(result.end).toBe('poweroff');
  const serial = (await readFile(result.log, 'utf8')).replace(/\x1b\[[0-9;]*m/g, '');
  expect(serial).toMatch(/Stopped builder-storage/);
  expect(serial.split('\n').filter((line) => line.includes('[FAILED]'))).toEqual([]);
}

describe('the patched image on an arm64 machine (QEMU virt)', () => {
  let work: string;
  let image: string;
  let files: BootFiles;
  let nfs: NfsServer;
  /** A copy of the patched image as the build wrote it, to find what the boots changed. */
  let pristine: string;
  /** The blocks of the image that differ from the build's after the boots and the power cut. */
  let written: string[] | undefined;
  const boots: BootResult[] = [];

  const boot = async (n: number, powerCut?: { marker: string; afterMs: number }) => {
    const result = await timed(`boot ${n}`, () =>
      bootImage({ image, files, log: join(LOGS, `boot-${n}.log`), timeoutMs: BOOT_TIMEOUT_MS, powerCut }),
    );
    boots[n] = result;
    if (result.userspaceSeconds !== undefined) timings.push([`  boot ${n} to the check service`, result.userspaceSeconds]);
    return result;
  };

  beforeAll(async () => {
    await mkdir(LOGS, { recursive: true });
    work = await mkdtemp(join(tmpdir(), 'odroid-boot-'));
    const [bundle, busybox] = (await timed('docker bundle (Debian arm64 packages)', () => run('bash', ['test/boot/make-docker-bundle.sh'])))
      .trim()
      .split('\n');
    const tree = await guestTree(work, busybox);
    const stock = join(work, 'stock.img');
    const made = await timed('Debian image (rootfs tarball and image)', () =>
      execFile('bash', ['test/boot/make-debian-image.sh', stock, tree], { cwd: REPO, maxBuffer: 64 << 20 }),
    );
    notes.push(
      made.stderr.includes('building the Debian') ? 'the rootfs tarball was built (not cached)' : 'the rootfs tarball came from the cache',
    );

    const config = join(work, 'config.json');
    await writeFile(config, JSON.stringify({ ...CONFIG, docker: { bundle } }, null, 2));
    const out = join(work, 'out');
    const built = await timed('patch (npm run build-image)', () => buildImage(['--input', stock, '--out', out, '--config', config]));
    if (built.code !== 0) throw new Error(`build-image failed (${built.code}):\n${built.stderr}`);
    await rm(stock);
    image = join(out, `${NAME}.img`);
    files = await bootFilesOf(image, work);
    pristine = join(work, 'pristine.img');
    await run('cp', ['--sparse=always', image, pristine]);

    const exportDir = join(work, 'export');
    // The check service tries the TLS API with the client certificate the build made.
    const tls = join(exportDir, 'boot-check/tls');
    await mkdir(tls, { recursive: true });
    await cp(join(out, 'secrets/tls/ca/cert.pem'), join(tls, 'ca.pem'));
    await cp(join(out, 'secrets/tls/client/cert.pem'), join(tls, 'cert.pem'));
    await cp(join(out, 'secrets/tls/client/key.pem'), join(tls, 'key.pem'));
    nfs = await startNfsServer(exportDir, CONFIG.nfs.export, join(work, 'nfs'));
  });

  afterAll(async () => {
    await nfs?.stop();
    const summary = [
      'boot test timings:',
      ...timings.map(([what, s]) => `  ${what.padEnd(44)} ${s.toFixed(1)} s`),
      ...notes.map((note) => `  note: ${note}`),
    ].join('\n');
    console.log(summary);
    await writeFile(join(LOGS, 'timings.txt'), `${summary}\n`).catch(() => undefined);
    if (work) await rm(work, { recursive: true, force: true });
  });

  it('boots with the command line from the patched boot.ini: init=/sbin/overlay-init, ro, root=UUID', async () => {
    const args = files.append.split(' ');
    expect(args).toContain('init=/sbin/overlay-init');
    expect(args).toContain('ro');
    expect(args).not.toContain('rw');
    expect(args).toContain(`root=UUID=${ROOT_UUID}`);

    const result = await boot(1);
    expect(lastCheck(result, 'finished'), `no end marker; see ${result.log}`).toBe('ok');
    expect(notOk(result, ['root-overlay', 'root-upper-tmpfs', 'root-lower-ro', 'root-writable', 'fat-not-rw'])).toEqual([]);
    expect(lastCheck(result, 'root-canary')).toBe('none');
    await expectCleanRun(result);
  });

  it('loads g_ether with the configured MACs on a USB device controller, and usb0 gets the configured address', () => {
    expect(notOk(boots[1], ['g-ether-loaded', 'g-ether-dev-addr', 'g-ether-host-addr', 'usb0-mac', 'usb0-address'])).toEqual([]);
    expect(lastCheck(boots[1], 'default-route')).toContain(`via ${CONFIG.network.gateway} dev usb0`);
  });

  it("mounts the host's NFS share and runs dockerd on the share-backed data root; a loaded image runs", () => {
    expect(notOk(boots[1], ['nfs-mounted', 'docker-active', 'docker-data-root', 'docker-run'])).toEqual([]);
    expect(lastCheck(boots[1], 'nfs-options')).toMatch(/vers=4\.1/);
    expect(lastCheck(boots[1], 'docker-driver')).toBe('overlay2');
    expect(lastCheck(boots[1], 'volume-stamp')).toBe('none');
    expect(existsSync(join(nfs.dir, `${NAME}.ext4`))).toBe(true);
  });

  it('answers the Docker API on tcp 2376 to a client with the generated certificate, and refuses one without', () => {
    expect(lastCheck(boots[1], 'docker-api-with-cert')).toBe('ok');
    // Refused for the missing certificate, not for any other failure (dockerd down, no route).
    expect(lastCheck(boots[1], 'docker-api-without-cert')).toMatch(/^refused: .*tls: bad certificate/);
  });

  it('after a reboot, a file written to / is gone and the volume and the loaded image are still there; then the power is cut mid-write', async () => {
    await mkdir(join(nfs.dir, 'boot-check'), { recursive: true });
    await writeFile(join(nfs.dir, 'boot-check/plan'), 'power-cut\n');
    const result = await boot(2, { marker: 'power-cut-armed', afterMs: 3000 });
    await rm(join(nfs.dir, 'boot-check/plan'));
    expect(lastCheck(result, 'root-canary')).toBe('none');
    expect(lastCheck(boots[1], 'root-writable')).toBe('ok');
    expect(lastCheck(result, 'volume-stamp')).toBe(lastCheck(boots[1], 'volume-wrote'));
    expect(lastCheck(result, 'tiny-image')).toBe('present');
    expect(notOk(result, ['root-overlay', 'docker-active', 'docker-run'])).toEqual([]);
    expect(result.end, `the power-cut workload never started; see ${result.log}`).toBe('powercut');
    // The cut landed while the writer was writing (at least two fsync'd files done).
    expect(Number(lastCheck(result, 'power-cut-armed'))).toBeGreaterThanOrEqual(2);
  });

  it('after the power cut, the rootfs is clean and not one block of the image was written; the device boots again', async () => {
    const offsets = await partitionOffsets(image);
    await execFile('e2fsck', ['-fn', `${image}?offset=${offsets.rootfs}`]);
    written = await changedBlocks(pristine, image, offsets);
    notes.push(`blocks of the image the boots changed: ${written.join(', ') || 'none'}`);
    // The read-only root is never written: not by the overlay, and not by a boot-time fsck
    // (HardKernel's fsck.repair=yes would rewrite the superblock; the step adds fsck.mode=skip).
    expect(written).toEqual([]);

    const dataImage = join(nfs.dir, `${NAME}.ext4`);
    const cut = await execFile('e2fsck', ['-fn', dataImage]).then(
      () => 0,
      (error: { code?: number }) => error.code ?? -1,
    );
    notes.push(`data image right after the power cut: e2fsck -fn exit ${cut} (the device repairs it at the next boot)`);

    const result = await boot(3);
    expect(lastCheck(result, 'finished'), `no end marker; see ${result.log}`).toBe('ok');
    await expectCleanRun(result);
    expect(notOk(result, ['root-overlay', 'usb0-address', 'nfs-mounted', 'docker-active', 'docker-data-root', 'docker-run'])).toEqual([]);
    expect(lastCheck(result, 'volume-stamp')).toBe(lastCheck(boots[2], 'volume-wrote'));
    // The device checked (and if need be repaired) its data image at boot: after a clean
    // shutdown it is consistent.
    await execFile('e2fsck', ['-fn', dataImage]);
  });
});
