/**
 * One device's image: a copy of the source (or of an earlier device's finished image) patched with
 * the device's config, then, with --checksum or --release, read once for its checksum and, for a
 * release, its xz and block map; and the lines of the build summary that describe it.
 */
import { createHash } from 'node:crypto';
import { basename } from 'node:path';
import { openStream } from '../artifacts/stream-sources.js';
import type { Board } from '../boards/board.js';
import { recognizeBoard } from '../boards/recognize.js';
import { sha256File } from '../checksum.js';
import type { BuildConfig } from '../config/schema.js';
import type { ApplyStats } from '../engine/apply.js';
import { applyPlan, type Plan, patchImage } from '../engine/patch.js';
import type { BuildPaths, ImageView, RunMemo } from '../engine/step.js';
import { detectNetwork, USB0_FILES } from '../facts/network.js';
import { writeFile } from '../files.js';
import type { ImageLayout } from '../image/layout.js';
import { usedRanges } from '../image/used-blocks.js';
import { type PendingImage, type PendingOutput, releaseFiles } from '../output/pending-output.js';
import { scanImage } from '../output/release.js';
import { deviceSecrets } from '../secrets/device-secrets.js';
import { STEPS } from '../steps/index.js';
import type { Stage } from '../timing.js';

export interface DeviceImage {
  pending: PendingImage;
  /** What the patch did, for the summary; not its plan, which a fleet would keep once per device. */
  patched: ApplyStats;
  /** The image's sha256, with --checksum or --release: a plain build does not read the image back. */
  sha256?: string;
  /** The sha256 of each of the device's files in --out that has one: its image and, for a release, its xz and bmap. */
  sha256s: Record<string, string>;
  release?: { xz: string; bmap: string };
  /** What brings usb0 up on the device, and from which file: the link a user cannot check without a screen. */
  usb0: string;
  /** The hardware the image is for (src/boards/table.ts), as the summary names it. */
  hardware: string;
  /** Its entry in the board table. */
  board: Board;
  /** What the steps warned of while planning it (StepContext.warn). */
  warnings: string[];
}

interface DeviceOptions {
  /** The source image's layout; every copy of it has the same. */
  layout: ImageLayout;
  paths: BuildPaths;
  once: RunMemo;
  /** The device's plan when it was made already (against an image with the same contents as `from`). */
  plan?: Plan;
  /** Hash the image for its `<name>.img.sha256`; a release always does. */
  checksum: boolean;
  release: boolean;
}

/** Copies `from` into the run's output as the device's image, patches it and, when asked to, reads it back once. */
export async function buildDeviceImage(
  stage: Stage,
  output: PendingOutput,
  from: string,
  device: BuildConfig,
  options: DeviceOptions,
): Promise<DeviceImage> {
  const pending = await stage('copy', () => output.startImage(from, device.name));
  // Made after the copy, so a build that cannot copy leaves no secrets; before the patch, which only places them.
  const secrets = STEPS.some((step) => step.usesSecrets)
    ? await stage('secrets', () => deviceSecrets(options.paths.secrets, device))
    : undefined;
  let usb0 = '';
  let hardware = '';
  let board: Board | undefined;
  const afterSteps = async (image: ImageView) => {
    const entry = await recognizeBoard(image, device.board);
    board = entry;
    const usbPowered = entry.power.profiles['usb3-0.9A'] !== undefined;
    hardware = `${entry.name} (${entry.image})${usbPowered ? '' : `; ${entry.power.note}`}`;
    const network = await detectNetwork(image);
    usb0 = `${network.mechanism} from ${USB0_FILES[network.mechanism].path}${network.fallback ? ` (fallback: ${network.fallback})` : ''}`;
  };
  const layout = { ...options.layout, path: pending.tempPath };
  const apply = { secrets, openStream, afterSteps };
  const { plan } = options;
  const { operations, bytesWritten, warnings } = await stage('patch', () =>
    plan ? applyPlan(layout, plan, apply) : patchImage(layout, device, STEPS, { paths: options.paths, once: options.once, ...apply }),
  );
  const patched = { operations, bytesWritten };
  // sha256 must hash every byte, holes too (~0.7 s per GiB of zeros): only an image that travels pays it.
  if (!options.checksum && !options.release) return { pending, patched, sha256s: {}, usb0, hardware, board: board!, warnings };
  const image = basename(pending.finalPath);
  const release = options.release ? releaseFiles(device.name) : undefined;
  const xzTemp = release && pending.artifact(release.xz);
  const scan = await stage(release ? 'release' : 'checksum', async () =>
    scanImage(pending.tempPath, {
      bmap: Boolean(release),
      alsoMapped: release ? await usedRanges(pending.tempPath) : undefined,
      xzTo: xzTemp,
    }),
  );
  const sha256s: Record<string, string> = { [image]: scan.sha256 };
  if (release && xzTemp && scan.bmap) {
    await writeFile(pending.artifact(release.bmap), scan.bmap);
    sha256s[release.xz] = await sha256File(xzTemp);
    sha256s[release.bmap] = createHash('sha256').update(scan.bmap).digest('hex');
  }
  return { pending, patched, sha256: scan.sha256, sha256s, release, usb0, hardware, board: board!, warnings };
}

/** The summary's lines for a committed device image. */
export function describeDeviceImage(image: DeviceImage, origin: string, checksumFiles: string[]): string {
  const { finalPath } = image.pending;
  return (
    `built ${finalPath}\n` +
    `  from     ${origin}\n` +
    `  board    ${image.hardware}\n` +
    `  steps    ${STEPS.map((s) => s.name).join(', ')} (${image.patched.operations} operations, ${image.patched.bytesWritten} bytes written)\n` +
    `  usb0     ${image.usb0}\n` +
    (image.sha256
      ? `  sha256   ${image.sha256}  (${checksumFiles.join(', ')})\n`
      : `  sha256   not computed: build with --checksum for ${basename(finalPath)}.sha256, or run sha256sum ${finalPath}\n`) +
    // bmaptool writes the mapped blocks alone: a card's old bytes would show through the image's holes.
    (image.release
      ? `  release  ${image.release.xz}, ${image.release.bmap} (bmaptool copy --bmap writes only the data blocks: onto an erased card)\n`
      : '') +
    `  private  0600, owner only: the image${image.release ? ' and its .xz hold' : ' holds'} the device's TLS server key and SSH host keys, as secrets/ does\n` +
    `  flash    sudo npm run flash -- ${finalPath} /dev/sdX (or Etcher, or dd)\n`
  );
}
