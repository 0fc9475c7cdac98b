/**
 * npm run build-image -- [flags]   (the flags: src/cli/build-flags.ts, or --help)
 *
 * Turns a board's stock image (an ODROID-C2's, a Raspberry Pi's: src/boards/table.ts) into a USB-tethered docker buildx builder image, offline
 * and without root. The build's stages, top to bottom: src/cli/build-pipeline.ts.
 */
import { relative, resolve } from 'node:path';
import { listBoards } from './src/boards/doc.js';
import { BUILD_COMMAND, BUILD_FLAGS, IMAGE_CACHE_DIR } from './src/cli/build-flags.js';
import { buildImages, dryRun } from './src/cli/build-pipeline.js';
import { parseFlags, runMain, usage, type WritePlace } from './src/cli/options.js';
import { pinClock, sourceDateEpoch } from './src/output/reproducible.js';
import { listSteps, STEPS } from './src/steps/index.js';

async function main(argv: string[]): Promise<void> {
  const args = parseFlags(argv, BUILD_FLAGS);
  if (args.help) {
    process.stdout.write(
      `${usage(BUILD_COMMAND, BUILD_FLAGS)}\n\nboards (--board, or recognised from the image; docs/boards.md):\n${listBoards()}`,
    );
    return;
  }
  if (args['list-steps']) {
    process.stdout.write(listSteps(STEPS));
    return;
  }
  const epoch = sourceDateEpoch();
  if (epoch !== undefined) pinClock(epoch);
  const request = { ...args, rotateSecrets: args['rotate-secrets'] };
  await (args['dry-run'] ? dryRun(request) : buildImages(request));
}

/** A build writes in two places: the image cache (downloads, decompressed images) and --out (all else). */
function placeOf(path: string): WritePlace {
  const inCache = !/^\.\.(\/|$)/.test(relative(IMAGE_CACHE_DIR, resolve(path)));
  return inCache ? { name: `the image cache ${IMAGE_CACHE_DIR}` } : { name: '--out', alternative: 'pass another --out' };
}

runMain(main, placeOf);
