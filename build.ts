/**
 * npm run build-image -- [flags]   (the flags: src/cli/build-flags.ts, or --help)
 *
 * Turns a stock ODROID-C2 image into a USB-tethered docker buildx builder image, offline
 * and without root. The build is the short sequence of stages below.
 */
import { relative, resolve } from 'node:path';
import { DownloadRefused, refuseDownloads } from './src/artifacts/download.js';
import { availableSource, resolveSource } from './src/artifacts/stock-image.js';
import { listBoards } from './src/boards/doc.js';
import { type BoardImage, buildBoardImage, describeBoardImage } from './src/cli/board-image.js';
import { BUILD_COMMAND, BUILD_FLAGS, IMAGE_CACHE_DIR } from './src/cli/build-flags.js';
import { type FlagValues, parseFlags, runMain, usage, type WritePlace } from './src/cli/options.js';
import { claimOutDir } from './src/cli/out-dir.js';
import { checkRootfsSpace } from './src/cli/rootfs-space.js';
import { fleetConfigs, parseFleetSize } from './src/config/fleet.js';
import { loadConfig } from './src/config/load.js';
import type { BuildConfig } from './src/config/schema.js';
import { patchImage, runMemo } from './src/engine/patch.js';
import type { BuildPaths, RunMemo } from './src/engine/step.js';
import { hostKitDirOf, writeHostKit } from './src/host-kit/host-kit.js';
import type { ImageLayout } from './src/image/layout.js';
import { openImage } from './src/image/open.js';
import { info } from './src/log.js';
import type { PendingDir } from './src/output/pending-dir.js';
import { pendingOutput } from './src/output/pending-output.js';
import { pinClock, sourceDateEpoch } from './src/output/reproducible.js';
import { openSecrets, secretsDirOf } from './src/secrets/secrets-dir.js';
import { listSteps, STEPS } from './src/steps/index.js';
import { remoteLoginWarning } from './src/steps/remote-access.js';
import { type Stage, stageTimer } from './src/timing.js';

const cacheDir = IMAGE_CACHE_DIR;

/** --dry-run: each board's operations, planned against the stock image. */
async function printPlans(
  stage: Stage,
  layout: ImageLayout,
  boards: BuildConfig[],
  options: { paths: BuildPaths; once: RunMemo; fleet: boolean },
): Promise<void> {
  for (const board of boards) {
    const plan = await stage('plan', () => patchImage(layout, board, STEPS, { paths: options.paths, dryRun: true, once: options.once }));
    if (options.fleet) process.stdout.write(`# ${board.name}\n`);
    for (const { step, operations } of plan.planned) {
      process.stdout.write(`${step}:\n${operations.map((line) => `  ${line}\n`).join('')}`);
    }
  }
}

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
  const stage = stageTimer();
  const config = await stage('config', () => loadConfig(args.config, { name: args.name, board: args.board }));
  const boards = args.fleet === undefined ? [config] : fleetConfigs(config, parseFleetSize(args.fleet));
  if (args['dry-run']) return dryRun(stage, args.input, boards, { out: args.out, fleet: args.fleet !== undefined });
  const lock = await claimOutDir(
    args.out,
    boards.map((board) => board.name),
  );
  try {
    await build(stage, args, config, boards);
  } finally {
    lock.release();
    info(stage.summary());
  }
}

async function dryRun(
  stage: Stage,
  input: string | undefined,
  boards: BuildConfig[],
  options: { out: string; fleet: boolean },
): Promise<void> {
  const stop = (wouldFirst: string) =>
    process.stdout.write(
      `dry run: a build would first ${wouldFirst}; --dry-run writes nothing, so it stops here: build once (image/ keeps what it fetches), or give local files\n`,
    );
  const source = await stage('source', () => availableSource({ input, cacheDir }));
  if ('wouldFirst' in source) return void stop(source.wouldFirst);
  const layout = await stage('inspect', () => openImage(source.path));
  // The steps' own downloads (the Docker bundle) are refused too.
  refuseDownloads();
  try {
    await printPlans(stage, layout, boards, {
      paths: { secrets: secretsDirOf(options.out), cache: cacheDir },
      once: runMemo(),
      fleet: options.fleet,
    });
  } catch (error) {
    if (!(error instanceof DownloadRefused)) throw error;
    stop(`download ${error.url} into ${error.dest}`);
  }
}

async function build(stage: Stage, args: FlagValues<typeof BUILD_FLAGS>, config: BuildConfig, boards: BuildConfig[]): Promise<void> {
  const source = await stage('source', () => resolveSource({ input: args.input, cacheDir }));
  const layout = await stage('inspect', () => openImage(source.path));
  const paths = { secrets: secretsDirOf(args.out), cache: cacheDir };
  // One memo for every board: what their plans share (checking the Docker bundle) is done once.
  const once = runMemo();
  const fleet = args.fleet !== undefined;
  // Boards after the first start from its image, where the bundle already is: the first one's additions are the most.
  await stage('space', () => checkRootfsSpace(layout, boards[0], { paths, once }));

  // Rotated secrets are made in a fresh directory that replaces the old one only with the images.
  const secrets = await openSecrets(args.out, { rotate: args['rotate-secrets'] });
  const output = pendingOutput(args.out);
  let kit: PendingDir | undefined;
  try {
    const images: BoardImage[] = [];
    for (const board of boards) {
      // Boards after the first start from the first one's finished image, not the stock one: the
      // steps rewrite all that differs per board, and what does not (the Docker bundle) is there.
      const from = images[0]?.pending.tempPath ?? source.path;
      images.push(
        await buildBoardImage(stage, output, from, board, {
          layout,
          paths: { ...paths, secrets: secrets.path },
          once,
          checksum: args.checksum,
          release: args.release,
        }),
      );
    }
    kit = await stage('host kit', () => writeHostKit(args.out, boards, secrets.path, config.name));
    // Every file is written before any is renamed into place: a full disk leaves the old set whole.
    const checksumFiles = await stage('checksums', () => output.prepare(Object.assign({}, ...images.map((image) => image.sha256s))));
    // The images last: a <name>.img present means its secrets and host kit are there too.
    await secrets.commit();
    await kit.commit();
    await stage('commit', () => output.commit());
    // Only now the secrets and kit they replaced go: until the images are in place, a failure puts them back.
    await secrets.settle();
    await kit.settle();
    const warnings = [...new Set([remoteLoginWarning(config), ...images.map((image) => image.powerWarning)])].filter(
      (warning) => warning !== undefined,
    );
    process.stdout.write(
      images.map((image) => describeBoardImage(image, source.origin, checksumFiles.get(image.pending.finalPath) ?? [])).join('') +
        (fleet
          ? `  fleet    ${boards.length} boards, one docker buildx builder "${config.name}" with a node per board (host kit: setup-buildx.sh)\n`
          : '') +
        `  host     ${hostKitDirOf(args.out)}: network, NFS export, SSH and docker buildx for the host; start with its README.md\n` +
        `  secrets  ${secretsDirOf(args.out)}${args['rotate-secrets'] ? ' (rotated: new CA, certificates and SSH host keys)' : ''}\n` +
        warnings.map((warning) => `  warning  ${warning}\n`).join(''),
    );
  } catch (error) {
    await output.discard();
    await kit?.discard();
    await secrets.discard();
    throw error;
  }
}

/** A build writes in two places: the image cache (downloads, decompressed images) and --out (all else). */
function placeOf(path: string): WritePlace {
  const inCache = !/^\.\.(\/|$)/.test(relative(cacheDir, resolve(path)));
  return inCache ? { name: `the image cache ${cacheDir}` } : { name: '--out', alternative: 'pass another --out' };
}

runMain(main, placeOf);
