/**
 * One board's image: a copy of the source (or of an earlier board's finished image) patched with
 * the board's config, then, with --checksum or --release, read once for its checksum and, for a
 * release, its xz and block map; and the lines of the build summary that describe it.
 */
import { createHash } from 'node:crypto';
import { basename } from 'node:path';
import { recognizeBoard } from '../boards/recognize.js';
import { sha256File } from '../checksum.js';
import type { BuildConfig } from '../config/schema.js';
import type { ApplyStats } from '../engine/apply.js';
import { patchImage } from '../engine/patch.js';
import type { BuildPaths, RunMemo } from '../engine/step.js';
import { detectNetwork, USB0_FILES } from '../facts/network.js';
import { writeFile } from '../files.js';
import type { ImageLayout } from '../image/layout.js';
import { usedRanges } from '../image/used-blocks.js';
import { type PendingImage, type PendingOutput, releaseFiles } from '../output/pending-output.js';
import { scanImage } from '../output/release.js';
import { STEPS } from '../steps/index.js';
import type { Stage } from '../timing.js';

export interface BoardImage {
  pending: PendingImage;
  /** What the patch did, for the summary; not its plan, which a fleet would keep once per board. */
  patched: ApplyStats;
  /** The image's sha256, with --checksum or --release: a plain build does not read the image back. */
  sha256?: string;
  /** The sha256 of each of the board's files in --out that has one: its image and, for a release, its xz and bmap. */
  sha256s: Record<string, string>;
  release?: { xz: string; bmap: string };
  /** What brings usb0 up on the board, and from which file: the link a user cannot check without a screen. */
  usb0: string;
  /** The hardware the image is for (src/boards/table.ts). */
  hardware: string;
  /** What the steps warned of while planning it (StepContext.warn). */
  warnings: string[];
}

interface BoardOptions {
  /** The source image's layout; every copy of it has the same. */
  layout: ImageLayout;
  paths: BuildPaths;
  once: RunMemo;
  /** Hash the image for its `<name>.img.sha256`; a release always does. */
  checksum: boolean;
  release: boolean;
}

/** Copies `from` into the run's output as the board's image, patches it and, when asked to, reads it back once. */
export async function buildBoardImage(
  stage: Stage,
  output: PendingOutput,
  from: string,
  board: BuildConfig,
  options: BoardOptions,
): Promise<BoardImage> {
  const pending = await stage('copy', () => output.startImage(from, board.name));
  let usb0 = '';
  let hardware = '';
  const { operations, bytesWritten, warnings } = await stage('patch', () =>
    patchImage({ ...options.layout, path: pending.tempPath }, board, STEPS, {
      paths: options.paths,
      once: options.once,
      afterSteps: async (image) => {
        const entry = await recognizeBoard(image, board.board);
        const usbPowered = entry.power.profiles['usb3-0.9A'] !== undefined;
        hardware = `${entry.name} (${entry.image})${usbPowered ? '' : `; ${entry.power.note}`}`;
        const network = await detectNetwork(image);
        usb0 = `${network.mechanism} from ${USB0_FILES[network.mechanism].path}${network.fallback ? ` (fallback: ${network.fallback})` : ''}`;
      },
    }),
  );
  const patched = { operations, bytesWritten };
  // sha256 must hash every byte, holes too (~0.7 s per GiB of zeros): only an image that travels pays it.
  if (!options.checksum && !options.release) return { pending, patched, sha256s: {}, usb0, hardware, warnings };
  const image = basename(pending.finalPath);
  const release = options.release ? releaseFiles(board.name) : undefined;
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
  return { pending, patched, sha256: scan.sha256, sha256s, release, usb0, hardware, warnings };
}

/** The summary's lines for a committed board image. */
export function describeBoardImage(board: BoardImage, origin: string, checksumFiles: string[]): string {
  const { finalPath } = board.pending;
  return (
    `built ${finalPath}\n` +
    `  from     ${origin}\n` +
    `  board    ${board.hardware}\n` +
    `  steps    ${STEPS.map((s) => s.name).join(', ')} (${board.patched.operations} operations, ${board.patched.bytesWritten} bytes written)\n` +
    `  usb0     ${board.usb0}\n` +
    (board.sha256
      ? `  sha256   ${board.sha256}  (${checksumFiles.join(', ')})\n`
      : `  sha256   not computed: build with --checksum for ${basename(finalPath)}.sha256, or run sha256sum ${finalPath}\n`) +
    // bmaptool writes the mapped blocks alone: a card's old bytes would show through the image's holes.
    (board.release
      ? `  release  ${board.release.xz}, ${board.release.bmap} (bmaptool copy --bmap writes only the data blocks: onto an erased card)\n`
      : '') +
    `  private  0600, owner only: the image${board.release ? ' and its .xz hold' : ' holds'} the device's TLS server key and SSH host keys, as secrets/ does\n` +
    `  flash    sudo npm run flash -- ${finalPath} /dev/sdX (or Etcher, or dd)\n`
  );
}
