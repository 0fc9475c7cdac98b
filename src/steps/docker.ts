import { type DockerBundle, isBinaryName, listBundle, resolveBundle } from '../artifacts/docker-bundle.js';
import type { BuildConfig } from '../config/schema.js';
import { type Operation, rootfsFile } from '../engine/operations.js';
import type { ImageView, RunMemo, Step } from '../engine/step.js';
import { renderTemplate } from '../engine/templates.js';
import { findProgram } from '../facts/root-paths.js';
import { enableUnitOperation, mountUnitName, unitEnabled } from '../facts/systemd.js';
import { DOCKER_TLS_PORT } from '../secrets/tls.js';
import { dockerHosts, dockerTlsOperations, dockerTlsView } from './docker-tls.js';

const BIN_DIR = '/usr/local/bin';
/** Which bundle is installed, so a rebuild with the same bundle skips the 200 MiB rewrite. */
const INSTALL_RECORD = '/usr/local/share/odroid-buildx-image/docker-bundle.json';
const STORAGE_SCRIPT = '/usr/local/sbin/builder-storage';
const UNITS = ['builder-storage.service', 'containerd.service', 'docker.service'];
/** builder-storage.service is pulled in by the other two (Requires=), so it needs no link of its own. */
const ENABLED_UNITS = ['containerd.service', 'docker.service'];

/**
 * NFS 4.1 over TCP: only port 2049 on the host, no rpcbind, mountd or statd on either side
 * (the image has no nfs-common), locks and callbacks inside that one connection, so it also
 * works through NAT. The C2's 3.16 kernel has NFS v3, v4 and v4.1 built in; 4.2 is not.
 * `hard`: after an unplug, I/O waits for the host instead of failing and corrupting the image.
 * `addr=`: without mount.nfs the kernel needs the server's address spelled out.
 */
export function nfsMountOptions(server: string): string {
  return `vers=4,minorversion=1,proto=tcp,hard,timeo=600,retrans=2,addr=${server}`;
}

/** How long the boot waits for the host's share before docker gives up (docs/docker.md). */
export const NFS_WAIT_SECONDS = 60;
export const DATA_ROOT = '/var/lib/docker';
/** Where dockerd puts containerd's root when it runs containerd itself. */
export const CONTAINERD_ROOT = `${DATA_ROOT}/containerd/daemon`;
/** The USB link to the host (usb-gadget step), named in the storage script's diagnostics. */
const LINK_INTERFACE = 'usb0';

const SHARE_DIR = '/run/builder-storage/share';
/** The iptables chain that keeps the Docker API to the USB link (docs/docker.md). */
export const API_CHAIN = 'builder-api';

/** Everything the docker templates may use. */
export function dockerView(config: BuildConfig) {
  return {
    nfsServer: config.nfs.server,
    nfsExport: config.nfs.export,
    nfsOptions: nfsMountOptions(config.nfs.server),
    nfsWaitSeconds: NFS_WAIT_SECONDS,
    linkInterface: LINK_INTERFACE,
    // dockerd listens on this address (daemon.json hosts): it must be there before dockerd starts.
    linkAddress: config.network.ip,
    shareDir: SHARE_DIR,
    // The mounts builder-storage makes, as systemd names them: ordered after them, the service is
    // stopped (and unmounts both itself, data image first) before systemd tries to unmount them.
    storageMountUnits: [mountUnitName(DATA_ROOT), mountUnitName(SHARE_DIR)].join(' '),
    dataImage: `${config.name}.ext4`,
    // Used instead when the share has it (docs/docker.md: a btrfs data image).
    dataImageBtrfs: `${config.name}.btrfs`,
    dataImageSize: config.nfs.dataImageSize,
    dataRoot: DATA_ROOT,
    containerdRoot: CONTAINERD_ROOT,
    envFile: '/run/builder-storage/dockerd.env',
    storageScript: STORAGE_SCRIPT,
    hosts: dockerHosts(config),
    // builder-storage drops the API's port on every interface but the link and lo.
    apiPort: DOCKER_TLS_PORT,
    apiChain: API_CHAIN,
    ...dockerTlsView,
    // Container logs live on the data image: bounded so one chatty build cannot fill it.
    logMaxSize: '10m',
    logMaxFile: '3',
  };
}

interface InstallRecord {
  sha256: string;
  origin: string;
  binaries: string[];
}

async function readRecord(image: ImageView): Promise<InstallRecord | undefined> {
  const text = await image.readText('rootfs', INSTALL_RECORD);
  try {
    return text === undefined ? undefined : (JSON.parse(text) as InstallRecord);
  } catch {
    return undefined;
  }
}

/** Whether the image already holds exactly this bundle's binaries. */
async function alreadyInstalled(image: ImageView, bundle: DockerBundle, record: InstallRecord | undefined): Promise<boolean> {
  if (record?.sha256 !== bundle.sha256 || !Array.isArray(record.binaries)) return false;
  for (const name of record.binaries) {
    if ((await image.lstat('rootfs', `${BIN_DIR}/${name}`))?.type !== 'file') return false;
  }
  return true;
}

/** Streams the bundle into /usr/local/bin, dropping binaries an earlier bundle installed that this one lacks. */
async function installOperations(image: ImageView, bundle: DockerBundle, once: RunMemo): Promise<Operation[]> {
  const record = await readRecord(image);
  if (await alreadyInstalled(image, bundle, record)) return [];
  const { binaries, bytes } = await once(`docker bundle ${bundle.path} ${bundle.sha256} listing`, () => listBundle(bundle));
  // The record is read from the image: only names a bundle may install are ever removed from BIN_DIR.
  const stale = (record?.binaries ?? []).filter((name) => typeof name === 'string' && !binaries.includes(name) && isBinaryName(name));
  const newRecord: InstallRecord = { sha256: bundle.sha256, origin: bundle.origin, binaries };
  return [
    ...stale.map((name): Operation => ({ op: 'remove', on: 'rootfs', path: `${BIN_DIR}/${name}` })),
    { op: 'mkdir', on: 'rootfs', path: BIN_DIR, mode: 0o755, uid: 0, gid: 0 },
    {
      op: 'stream',
      on: 'rootfs',
      dir: BIN_DIR,
      source: { from: 'docker-bundle', path: bundle.path, sha256: bundle.sha256, origin: bundle.origin, binaries },
      bytes,
    },
    // Written last: an interrupted install leaves no record, so the next build installs again.
    ...rootfsFile(INSTALL_RECORD, `${JSON.stringify(newRecord, null, 2)}\n`),
  ];
}

async function hasIptables(image: ImageView): Promise<boolean> {
  return (await findProgram(image, 'iptables')) !== undefined;
}

/**
 * Docker from its static bundle, with its data on the host's NFS share: an ext4 image file there,
 * checked and loop-mounted at boot by builder-storage before containerd and dockerd start. The
 * host reaches its API on tcp://<device>:2376 with a client certificate (docker-tls.ts).
 */
export const docker: Step = {
  name: 'docker',
  usesSecrets: true,
  summary: `Docker's static bundle in ${BIN_DIR}, its data on the host's NFS share, its API on the USB link with mutual TLS`,
  async plan({ config, image, paths, once, warn }) {
    // Hashing a 200 MiB bundle once per run, not once per device of a fleet. Listing it (below) is
    // memoised for dry runs, where every device plans against the stock image; a build's later
    // devices start from the first one's image, where alreadyInstalled finds the bundle.
    const bundle = await once(`docker bundle ${JSON.stringify(config.docker)} ${paths.cache}`, () =>
      resolveBundle(config.docker, paths.cache),
    );
    if (!(await hasIptables(image))) {
      warn(
        'the image has no iptables: dockerd will not start with its default bridge network until iptables is installed (docs/docker.md)',
      );
    }
    const view = dockerView(config);
    const render = (path: string) => renderTemplate(`docker${path}.mustache`, view);
    const operations = await installOperations(image, bundle, once);
    operations.push(...rootfsFile(STORAGE_SCRIPT, await render(STORAGE_SCRIPT), 0o755));
    operations.push(...dockerTlsOperations());
    operations.push(...rootfsFile('/etc/docker/daemon.json', await render('/etc/docker/daemon.json')));
    for (const unit of UNITS) operations.push(...rootfsFile(`/etc/systemd/system/${unit}`, await render(`/etc/systemd/system/${unit}`)));
    operations.push(...ENABLED_UNITS.map((unit) => enableUnitOperation(unit)));
    return operations;
  },
  async applied(image) {
    return (await image.lstat('rootfs', `${BIN_DIR}/dockerd`))?.type === 'file' && (await unitEnabled(image, 'docker.service'));
  },
};
