/**
 * The host kit, `<out>/host/`: what the computer the device plugs into needs (network profile or
 * NAT script, NFS export, SSH known_hosts, docker contexts and the buildx builder, the client's
 * TLS files, a native-versus-emulation benchmark, install.sh setting it all up in one command),
 * rendered from templates/host-kit/. It is written outside the image, so it is a
 * build stage rather than a step, and it is swapped in whole: a failed build leaves the old kit.
 * Everything per device comes from one device's config (deviceView), so several devices are a list.
 */
import { createHash } from 'node:crypto';
import { chmod, mkdir } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import type { BuildConfig } from '../config/schema.js';
import { SYSTEM_DIRECTORIES } from '../config/system-directories.js';
import { renderTemplate } from '../engine/templates.js';
import { writeFile } from '../files.js';
import { hostKitDirOf, KIT_MARKER } from '../output/out-layout.js';
import { type PendingDir, pendingDir } from '../output/pending-dir.js';
import { hostKeys, hostKeysDir } from '../secrets/ssh-host-keys.js';
import { DOCKER_TLS_PORT, tlsMaterial } from '../secrets/tls.js';

// Its place and marker are --out's layout (out-layout.ts, which refuses a host/ without the marker).
export { hostKitDirOf };

const KIT_MARKER_TEXT =
  'This directory is the host kit written by odroid-buildx-image: each build into this --out replaces it whole.\nKeep your own files elsewhere.\n';

/** The build context bench-buildx.sh builds on both builders. */
const BENCH_FILES = ['Dockerfile', 'Makefile', 'bench.c'];

export interface KitFile {
  /** Relative to the kit's directory. */
  path: string;
  content: string;
  mode: number;
}

/** NetworkManager wants a UUID per profile: one derived from the device, so rebuilds keep it. */
function profileUuid(config: BuildConfig): string {
  const hex = createHash('sha256').update(`nmconnection:${config.name}:${config.usb.hostMac}`).digest('hex').slice(0, 32).split('');
  hex[12] = '8'; // RFC 9562 version 8: a UUID made by an application's own rule
  hex[16] = ((parseInt(hex[16], 16) & 0x3) | 0x8).toString(16); // the RFC variant
  const text = hex.join('');
  return `${text.slice(0, 8)}-${text.slice(8, 12)}-${text.slice(12, 16)}-${text.slice(16, 20)}-${text.slice(20)}`;
}

/**
 * The firewalld rule that lets a device reach the host's NFS server (TCP 2049, docs/docker.md)
 * and nothing else: NetworkManager's shared link is in the nm-shared zone, which rejects NFS.
 */
const nfsRichRule = (deviceIp: string) => `rule family="ipv4" source address="${deviceIp}" port port="2049" protocol="tcp" accept`;

/**
 * The data image install.sh makes on the share, or '' when the device makes its own (ext4, with
 * its own mkfs.ext4, whose features its kernel and e2fsck know). A kernel without the mainline
 * overlay (the C2's stock 3.16) would run Docker's vfs driver on ext4: btrfs shares layers there
 * (docs/docker.md), and the stock image has no mkfs.btrfs, so the host makes it.
 */
const hostDataImage = (config: BuildConfig, mainlineOverlay: boolean) => (mainlineOverlay ? '' : `${config.name}.btrfs`);

/** What the kit needs to know of the board the images are for (its entry in src/boards/table.ts). */
export interface KitHardware {
  /** Its id in the board table: "odroid-c2". */
  id: string;
  /** The port the cable goes into. */
  port: string;
  /** Whether that cable powers it (false: it needs its own supply). */
  usbPowered: boolean;
  /** Whether its kernel has the mainline overlay file system (the stock C2 kernel has not). */
  mainlineOverlay: boolean;
}

/** The C2's, for a kit made without an image (the tests'): the stock 3.16 kernel, powered over USB. */
export const C2_HARDWARE: KitHardware = { id: 'odroid-c2', port: 'micro-USB OTG', usbPowered: true, mainlineOverlay: false };

/**
 * A device's values for the templates: everything per device is here. `hostKeys`: the device's
 * SSH host public keys as known_hosts takes them, "type base64".
 */
export function deviceView(config: BuildConfig, hostKeys: string[], hardware: KitHardware = C2_HARDWARE) {
  const { mainlineOverlay } = hardware;
  return {
    name: config.name,
    hostname: config.hostname,
    deviceIp: config.network.ip,
    hostMac: config.usb.hostMac,
    // systemd's name for a USB adapter with a fixed MAC (NamePolicy "mac" for USB devices).
    interfaceName: `enx${config.usb.hostMac.replaceAll(':', '')}`,
    hostAddress: `${config.network.gateway}/${config.network.prefix}`,
    gateway: config.network.gateway,
    nfsServer: config.nfs.server,
    export: config.nfs.export,
    hostDataImage: hostDataImage(config, mainlineOverlay),
    dataImageSize: config.nfs.dataImageSize,
    nfsRichRule: nfsRichRule(config.network.ip),
    tlsPort: DOCKER_TLS_PORT,
    uuid: profileUuid(config),
    nmconnection: `${config.name}.nmconnection`,
    // power.profile full is for the board's adapter: the kit says so where the cable is plugged in.
    fullPower: hardware.usbPowered && config.power.profile === 'full',
    hostKeys,
  };
}

/** The kit's files made from templates (all but tls/), for the devices' views and their buildx builder `builder`. */
export async function renderKitTemplates(
  views: ReturnType<typeof deviceView>[],
  builder: string,
  hardware: KitHardware = C2_HARDWARE,
): Promise<KitFile[]> {
  const view = { builderName: builder, devices: views, systemDirs: SYSTEM_DIRECTORIES, board: hardware };
  const render = (template: string, data: object = view) => renderTemplate(`host-kit/${template}.mustache`, data);
  return [
    // NetworkManager ignores keyfiles that others can read: 0600 lets a plain `cp` work.
    ...(await Promise.all(
      views.map(async (device) => ({ path: device.nmconnection, content: await render('device.nmconnection', device), mode: 0o600 })),
    )),
    { path: 'nat.sh', content: await render('nat.sh'), mode: 0o755 },
    { path: 'exports', content: await render('exports'), mode: 0o644 },
    { path: 'known_hosts', content: await render('known_hosts'), mode: 0o644 },
    { path: 'setup-buildx.sh', content: await render('setup-buildx.sh'), mode: 0o755 },
    // README.md's steps 2-5 in one command, with --dry-run and --uninstall.
    { path: 'install.sh', content: await render('install.sh'), mode: 0o755 },
    // The chain from USB link to builder, checked link by link.
    { path: 'doctor.sh', content: await render('doctor.sh'), mode: 0o755 },
    // Native versus emulation: the script and the build it times.
    { path: 'bench-buildx.sh', content: await render('bench-buildx.sh'), mode: 0o755 },
    ...(await Promise.all(
      BENCH_FILES.map(async (file) => ({ path: `bench/${file}`, content: await render(`bench/${file}`), mode: 0o644 })),
    )),
    { path: 'README.md', content: await render('README.md'), mode: 0o644 },
  ];
}

/** The kit's files for `devices` (one config per device) and their buildx builder `builder`. */
async function hostKitFiles(devices: BuildConfig[], secrets: string, builder: string, hardware: KitHardware): Promise<KitFile[]> {
  const views = await Promise.all(
    devices.map(async (device) => {
      const keys = await hostKeys(hostKeysDir(secrets), `root@${device.hostname}`);
      // "type base64", without the comment ssh-keygen put there.
      return deviceView(
        device,
        keys.map((key) => key.publicKey.toString('utf8').trim().split(/\s+/).slice(0, 2).join(' ')),
        hardware,
      );
    }),
  );
  // The client pair is the same for every device; asking for each device's material also makes
  // sure its server certificate matches the CA the kit trusts. One device at a time: on a fresh
  // secrets directory the first makes the CA the others must find, not one each of their own.
  const tlsOf = (device: BuildConfig) => tlsMaterial(secrets, { name: device.name, hostname: device.hostname, ip: device.network.ip });
  const tls = await tlsOf(devices[0]);
  for (const device of devices.slice(1)) await tlsOf(device);
  return [
    ...(await renderKitTemplates(views, builder, hardware)),
    { path: 'tls/ca.pem', content: tls.ca, mode: 0o644 },
    { path: 'tls/cert.pem', content: tls.client.cert, mode: 0o644 },
    { path: 'tls/key.pem', content: tls.client.key, mode: 0o600 },
  ];
}

/**
 * Writes the kit into a temp directory beside `<out>/host`; commit() swaps it in. tls/ is 0700:
 * the client key opens the device's Docker, which is root on the device. `hardware`: the board
 * the build recognised in the image (a fleet's devices are all the same board).
 */
export async function writeHostKit(
  outDir: string,
  devices: BuildConfig[],
  secrets: string,
  builder = devices[0].name,
  hardware: KitHardware = C2_HARDWARE,
): Promise<PendingDir> {
  const kit = await pendingDir(hostKitDirOf(outDir), 0o755);
  try {
    await mkdir(join(kit.path, 'tls'), { mode: 0o700 });
    await writeFile(join(kit.path, KIT_MARKER), KIT_MARKER_TEXT, { mode: 0o644 });
    await mkdir(join(kit.path, 'bench'));
    await chmod(join(kit.path, 'bench'), 0o755);
    for (const file of await hostKitFiles(devices, secrets, builder, hardware)) {
      const path = join(kit.path, file.path);
      await mkdir(dirname(path), { recursive: true });
      // writeFile's mode is masked by the umask; the kit's modes are part of its contract.
      await writeFile(path, file.content, { mode: file.mode });
      await chmod(path, file.mode);
    }
  } catch (error) {
    await kit.discard();
    throw error;
  }
  return kit;
}
