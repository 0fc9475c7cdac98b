import type { Board } from '../boards/board.js';
import { boardOf } from '../boards/recognize.js';
import type { Operation } from '../engine/operations.js';
import type { ImageView, Step } from '../engine/step.js';
import { renderTemplate } from '../engine/templates.js';
import { UserError } from '../errors.js';
import { kernelArgs, kernelArgsOperations, readBootConfig, requireBootConfig } from '../facts/boot-config.js';
import { realPath } from '../facts/root-paths.js';
import { maskUnitsOperations, unitPath } from '../facts/systemd.js';
import { SECRET, SSH_HOST_KEY_TYPES } from '../secrets/device-secrets.js';

export const OVERLAY_INIT = '/sbin/overlay-init';
const INIT_ARG = `init=${OVERLAY_INIT}`;
/** What overlay-init execs once the overlay is up: on Ubuntu 18.04 a link to systemd. */
const REAL_INIT = '/sbin/init';
/**
 * The most RAM the overlay's tmpfs may hold: every file written to / (logs, apt, /tmp: Ubuntu
 * 18.04 has no tmpfs /tmp). tmpfs takes memory only as files are written, so this is a cap, not a
 * reservation: the kernel's own default, ~1 GiB of the C2's 2 GiB. Docker's data is on NFS.
 */
const TMPFS_SIZE = '50%';

/** apt's daily download/upgrade and the unattended-upgrades shutdown hook. */
const MASKED_UNITS = ['apt-daily.timer', 'apt-daily-upgrade.timer', 'unattended-upgrades.service'];

const ROOT_FILE = { uid: 0, gid: 0, mode: 0o644 };
const CLOUD_INIT_DISABLED = '/etc/cloud/cloud-init.disabled';

/**
 * The overlay's lower layer must already be read-only when overlay-init runs: `ro`, never `rw`.
 * `fsck.mode=skip` (and its older spelling `fastboot`, for Ubuntu 18.04's initramfs): HardKernel's
 * `fsck.repair=yes` makes the initramfs run e2fsck -y on the root at every boot, and e2fsck
 * rewrites the superblock even on a clean file system, a write to the card each boot (seen in
 * the QEMU boot test). The root is never written, so there is nothing to check.
 */
const OVERLAY_BOOT_ARGS = ['ro', 'fsck.mode=skip', 'fastboot', INIT_ARG];

/**
 * Where /sbin/overlay-init really lives: on merged-/usr systems /sbin is a link to usr/sbin, and
 * the applier never writes through links, so the file goes where the link points.
 */
function overlayInitFile(image: ImageView): Promise<string> {
  return realPath(image, OVERLAY_INIT);
}

async function overlayInitOperations(image: ImageView, board: Board): Promise<Operation[]> {
  if (!(await image.lstat('rootfs', REAL_INIT))) {
    throw new UserError(`the root file system has no ${REAL_INIT} for overlay-init to start; use HardKernel's Ubuntu image`);
  }
  const script = await renderTemplate('readonly-root/sbin/overlay-init.mustache', { realInit: REAL_INIT, tmpfsSize: TMPFS_SIZE });
  return [
    // Written before boot.ini names it, so no partial build boots into a missing init.
    { op: 'write', on: 'rootfs', path: await overlayInitFile(image), content: script, ...ROOT_FILE, mode: 0o755 },
    ...kernelArgsOperations(await requireBootConfig(image), { remove: ['rw', ...board.firstBoot.kernelArgs], set: OVERLAY_BOOT_ARGS }),
  ];
}

/**
 * The stock image's first-boot units, masked where the image has them: under the overlay they
 * would run at every boot (resizing, new SSH host keys, a user wizard waiting on a console).
 * cloud-init is switched off with the file its generator checks (cloud-init docs, "How to
 * disable cloud-init"), so neither its user-data nor its network-config on the FAT apply.
 */
async function firstBootOperations(image: ImageView, board: Board): Promise<Operation[]> {
  const present = [];
  for (const unit of board.firstBoot.units) if (await unitPath(image, unit)) present.push(unit);
  const cloudInit = (await image.lstat('rootfs', '/etc/cloud'))?.type === 'dir';
  return [
    ...(await maskUnitsOperations(image, present)),
    ...(cloudInit ? [{ op: 'write', on: 'rootfs', path: CLOUD_INIT_DISABLED, content: '', ...ROOT_FILE } as const] : []),
  ];
}

async function fstabOperations(image: ImageView): Promise<Operation[]> {
  if ((await image.lstat('rootfs', '/etc/fstab'))?.type !== 'file') return [];
  return [{ op: 'edit', on: 'rootfs', path: '/etc/fstab', change: { change: 'fstab-protect' } }];
}

const HOST_KEY_FILE = /^ssh_host_.+_key(\.pub|-cert\.pub)?$/;
const OUR_HOST_KEY_FILES = new Set(SSH_HOST_KEY_TYPES.flatMap((type) => [`ssh_host_${type}_key`, `ssh_host_${type}_key.pub`]));

/**
 * The same host keys at every boot and every build (from the build's secrets, filled in by its
 * secrets stage). Other host keys the image ships go: every copy of a stock image would share them.
 */
async function sshHostKeyOperations(image: ImageView): Promise<Operation[]> {
  const stale = (await image.readdir('rootfs', '/etc/ssh')).filter((name) => HOST_KEY_FILE.test(name) && !OUR_HOST_KEY_FILES.has(name));
  return [
    ...stale.map((name): Operation => ({ op: 'remove', on: 'rootfs', path: `/etc/ssh/${name}` })),
    ...SSH_HOST_KEY_TYPES.flatMap((type): Operation[] => [
      { op: 'secret', on: 'rootfs', path: `/etc/ssh/ssh_host_${type}_key`, secret: SECRET.sshHostKey(type), ...ROOT_FILE, mode: 0o600 },
      { op: 'secret', on: 'rootfs', path: `/etc/ssh/ssh_host_${type}_key.pub`, secret: SECRET.sshHostPublicKey(type), ...ROOT_FILE },
    ]),
  ];
}

const templateWrite = async (path: string): Promise<Operation> => ({
  op: 'write',
  on: 'rootfs',
  path,
  content: await renderTemplate(`readonly-root${path}.mustache`, {}),
  ...ROOT_FILE,
});

/**
 * Power-cut safety: the root file system is never written (a tmpfs overlay over it, set up by
 * overlay-init), the FAT is mounted read-only, and what would write or churn anyway is off.
 */
export const readonlyRoot: Step = {
  name: 'readonly-root',
  usesSecrets: true,
  summary: 'read-only root under a tmpfs overlay, read-only FAT, no swap or apt timers, volatile journal, fixed SSH host keys',
  async plan({ config, image }) {
    const board = await boardOf(image, config);
    return [
      ...(await overlayInitOperations(image, board)),
      ...(await firstBootOperations(image, board)),
      ...(await fstabOperations(image)),
      ...(await maskUnitsOperations(image, MASKED_UNITS)),
      await templateWrite('/etc/apt/apt.conf.d/99readonly-root'),
      await templateWrite('/etc/systemd/journald.conf.d/volatile.conf'),
      ...(await sshHostKeyOperations(image)),
    ];
  },
  async applied(image) {
    const boot = await readBootConfig(image);
    return boot !== undefined && kernelArgs(boot).includes(INIT_ARG) && (await image.lstat('rootfs', OVERLAY_INIT))?.type === 'file';
  },
};
