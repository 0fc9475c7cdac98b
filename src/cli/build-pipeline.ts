/**
 * The build, top to bottom: buildImages() and dryRun() are flat lists of the stages below, each a
 * verb-named call (as mkosi's build_image); --dry-run runs the same stages up to the plan and
 * writes nothing. What each path under --out may become is out-layout.ts's to say.
 */
import { relative } from 'node:path';
import { DownloadRefused, refuseDownloads } from '../artifacts/download.js';
import { availableSource, type ResolvedSource, resolveSource } from '../artifacts/stock-image.js';
import type { Board } from '../boards/board.js';
import { fleetConfigs, parseFleetSize } from '../config/fleet.js';
import { loadConfig } from '../config/load.js';
import type { BuildConfig, KeyOverrides } from '../config/schema.js';
import { describeOperation } from '../engine/operations.js';
import { type Plan, planImage, runMemo } from '../engine/patch.js';
import type { BuildPaths, RunMemo } from '../engine/step.js';
import { type KitHardware, writeHostKit } from '../host-kit/host-kit.js';
import type { ImageLayout } from '../image/layout.js';
import { openImage } from '../image/open.js';
import { rootfsFree, rootfsTooSmall } from '../image/rootfs-limits.js';
import { info, warn } from '../log.js';
import { checkReplaceable, hostKitDirOf, secretsDirOf } from '../output/out-layout.js';
import { lockOutDir, type OutLock } from '../output/out-lock.js';
import type { PendingDir } from '../output/pending-dir.js';
import { type PendingOutput, pendingOutput, prepareOutputDir } from '../output/pending-output.js';
import { removeLeftovers } from '../output/temp-files.js';
import { openSecrets } from '../secrets/secrets-dir.js';
import { STEPS } from '../steps/index.js';
import { remoteLoginWarning } from '../steps/remote-access.js';
import { type Stage, stageTimer } from '../timing.js';
import { IMAGE_CACHE_DIR } from './build-flags.js';
import { buildDeviceImage, type DeviceImage, describeDeviceImage } from './device-image.js';

/** The parsed command line; the flags that set a config key (--name, --board) are KeyOverrides. */
export interface BuildRequest extends KeyOverrides {
  input?: string;
  out: string;
  config?: string;
  fleet?: string;
  checksum: boolean;
  release: boolean;
  rotateSecrets: boolean;
}

const cacheDir = IMAGE_CACHE_DIR;

/** Builds the images (one, or a fleet's), the host kit and the secrets into --out, all or nothing. */
export async function buildImages(request: BuildRequest): Promise<void> {
  const stage = stageTimer();
  const { config, devices } = await stage('config', () => loadDevices(request));
  const lock = await claimOut(request.out, devices);
  try {
    const source = await stage('source', () => resolveSource({ input: request.input, cacheDir }));
    const layout = await stage('inspect', () => openImage(source.path));
    const paths = { secrets: secretsDirOf(request.out), cache: cacheDir };
    // One memo for every device: what their plans share (checking the Docker bundle) is done once.
    const once = runMemo();
    // The first device's plan, made once against the source without writing, is what its copy
    // gets: a build that cannot fit stops before copying a multi-GiB image. Devices after the
    // first start from its image, where the bundle already is: its additions are the most.
    const firstPlan = await stage('plan', () => planDevice(layout, devices[0], { paths, once }));
    await stage('space', () => checkRoom(layout, firstPlan));
    // Rotated secrets are made in a fresh directory that replaces the old one only with the images.
    const secrets = await openSecrets(request.out, { rotate: request.rotateSecrets });
    const output = pendingOutput(request.out);
    let kit: PendingDir | undefined;
    try {
      const images = await patchDevices(stage, output, source, devices, firstPlan, {
        layout,
        paths: { ...paths, secrets: secrets.path },
        once,
        request,
      });
      kit = await stage('host kit', () => writeHostKit(request.out, devices, secrets.path, config.name, kitHardware(images[0].board)));
      // Every file is written before any is renamed into place: a full disk leaves the old set whole.
      const checksumFiles = await stage('checksums', () => output.prepare(Object.assign({}, ...images.map((image) => image.sha256s))));
      await commitAll(stage, secrets, kit, output);
      printSummary(request, config, devices, source, images, checksumFiles);
    } catch (error) {
      await output.discard();
      await kit?.discard();
      await secrets.discard();
      throw error;
    }
  } finally {
    lock.release();
    info(stage.summary());
  }
}

/**
 * --dry-run: the same stages up to the plan, each device's printed, and the room the first one
 * needs checked as a build would; nothing is written, downloaded or decompressed.
 */
export async function dryRun(request: BuildRequest): Promise<void> {
  const stage = stageTimer();
  const { devices } = await stage('config', () => loadDevices(request));
  const source = await stage('source', () => availableSource({ input: request.input, cacheDir }));
  if ('wouldFirst' in source) return stopDryRun(source.wouldFirst);
  const layout = await stage('inspect', () => openImage(source.path));
  // The steps' own downloads (the Docker bundle) are refused too.
  refuseDownloads();
  const options = { paths: { secrets: secretsDirOf(request.out), cache: cacheDir }, once: runMemo() };
  try {
    const plans: Plan[] = [];
    for (const device of devices) {
      plans.push(await stage('plan', () => planDevice(layout, device, options)));
      printPlan(device, plans[plans.length - 1], request.fleet !== undefined);
    }
    // What the steps warned of, once however many devices said it.
    for (const warning of new Set(plans.flatMap((plan) => plan.warnings))) warn(warning);
    await checkRoom(layout, plans[0]);
  } catch (error) {
    if (!(error instanceof DownloadRefused)) throw error;
    stopDryRun(`download ${error.url} into ${error.dest}`);
  }
}

/** The config, and the fleet's devices made from it (or the config alone). */
async function loadDevices(request: BuildRequest): Promise<{ config: BuildConfig; devices: BuildConfig[] }> {
  const config = await loadConfig(request.config, request);
  return { config, devices: request.fleet === undefined ? [config] : fleetConfigs(config, parseFleetSize(request.fleet)) };
}

/**
 * Takes --out for a build of `devices`: writable, no other build writing into it, what a build
 * killed there left (the temp paths its journal names) gone first, and nothing there the build
 * must not replace.
 */
async function claimOut(outDir: string, devices: BuildConfig[]): Promise<OutLock> {
  await prepareOutputDir(outDir);
  const lock = lockOutDir(outDir);
  try {
    const removed = await removeLeftovers(outDir, lock.killed);
    if (removed.length > 0)
      info(`removed what an interrupted build left in ${outDir}: ${removed.map((path) => relative(outDir, path)).join(', ')}`);
    await checkReplaceable(
      outDir,
      devices.map((device) => device.name),
    );
  } catch (error) {
    lock.release();
    throw error;
  }
  return lock;
}

/** A device's operations, planned against `layout`'s image without writing to it. */
function planDevice(layout: ImageLayout, device: BuildConfig, options: { paths: BuildPaths; once: RunMemo }): Promise<Plan> {
  return planImage(layout, device, STEPS, options);
}

/**
 * Room in the root file system, checked before the copy: the plan says what the build adds (the
 * Docker bundle's unpacked size from its tar headers, overlays, templates), the superblock what is free.
 */
async function checkRoom(layout: ImageLayout, plan: Plan): Promise<void> {
  const refusal = rootfsTooSmall(layout, await rootfsFree(layout), plan.rootfsNeeds);
  if (refusal) throw refusal;
}

/** Each device's image, patched in a temp file of `output`. */
async function patchDevices(
  stage: Stage,
  output: PendingOutput,
  source: ResolvedSource,
  devices: BuildConfig[],
  firstPlan: Plan,
  options: { layout: ImageLayout; paths: BuildPaths; once: RunMemo; request: BuildRequest },
): Promise<DeviceImage[]> {
  const images: DeviceImage[] = [];
  for (const device of devices) {
    // Devices after the first start from the first one's finished image, not the stock one: the
    // steps rewrite all that differs per device, and what does not (the Docker bundle) is there.
    // The first gets the plan made against the source; the others are planned against that image.
    const from = images[0]?.pending.tempPath ?? source.path;
    const plan = images.length === 0 ? firstPlan : undefined;
    const { layout, paths, once, request } = options;
    images.push(
      await buildDeviceImage(stage, output, from, device, {
        layout,
        paths,
        once,
        plan,
        checksum: request.checksum,
        release: request.release,
      }),
    );
  }
  return images;
}

/** Puts the secrets, the host kit and then the images in place; only then do the secrets and kit they replaced go. */
async function commitAll(stage: Stage, secrets: PendingDir, kit: PendingDir, output: PendingOutput): Promise<void> {
  await secrets.commit();
  await kit.commit();
  // The images last: a <name>.img present means its secrets and host kit are there too.
  await stage('commit', () => output.commit());
  // Until the images are in place, a failure puts the replaced secrets and kit back.
  await secrets.settle();
  await kit.settle();
}

function printSummary(
  request: BuildRequest,
  config: BuildConfig,
  devices: BuildConfig[],
  source: ResolvedSource,
  images: DeviceImage[],
  checksumFiles: Map<string, string[]>,
): void {
  const warnings = [...new Set([remoteLoginWarning(config), ...images.flatMap((image) => image.warnings)])].filter(
    (warning) => warning !== undefined,
  );
  process.stdout.write(
    images.map((image) => describeDeviceImage(image, source.origin, checksumFiles.get(image.pending.finalPath) ?? [])).join('') +
      (request.fleet !== undefined
        ? `  fleet    ${devices.length} devices, one docker buildx builder "${config.name}" with a node per device (host kit: setup-buildx.sh)\n`
        : '') +
      `  host     ${hostKitDirOf(request.out)}: network, NFS export, SSH and docker buildx for the host; start with its README.md\n` +
      `  secrets  ${secretsDirOf(request.out)}${request.rotateSecrets ? ' (rotated: new CA, certificates and SSH host keys)' : ''}\n` +
      warnings.map((warning) => `  warning  ${warning}\n`).join(''),
  );
}

function printPlan(device: BuildConfig, plan: Plan, fleet: boolean): void {
  if (fleet) process.stdout.write(`# ${device.name}\n`);
  for (const { step, operations } of plan.planned)
    process.stdout.write(`${step}:\n${operations.map((op) => `  ${describeOperation(op)}\n`).join('')}`);
}

function stopDryRun(wouldFirst: string): void {
  process.stdout.write(
    `dry run: a build would first ${wouldFirst}; --dry-run writes nothing, so it stops here: build once (image/ keeps what it fetches), or give local files\n`,
  );
}

/** What the host kit says of the board: its port, whether the cable powers it, its kernel's overlay. */
function kitHardware(board: Board): KitHardware {
  return {
    id: board.id,
    port: board.port,
    usbPowered: board.power.profiles['usb2-0.5A'] !== undefined,
    mainlineOverlay: board.kernel.overlay === 'overlay',
  };
}
