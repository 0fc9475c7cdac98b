/**
 * npm run build-image -- [--input PATH|URL] [--out DIR] [--config FILE] [--name NAME] [--dry-run] [--release] [--rotate-secrets]
 *
 * Turns a stock ODROID-C2 image into a USB-tethered docker buildx builder image, offline
 * and without root. The build is the short sequence of stages below.
 */
import { fileURLToPath } from 'node:url';
import { createHash } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { sha256File } from './src/checksum.js';
import { parseOptions, runMain } from './src/cli.js';
import { loadConfig } from './src/config.js';
import { openImage } from './src/disk/image.js';
import { hostKitDirOf, writeHostKit } from './src/host-kit.js';
import { info } from './src/log.js';
import { startOutput, prepareOutputDir } from './src/output.js';
import type { PendingDir } from './src/pending-dir.js';
import { patchImage } from './src/patch.js';
import { scanImage } from './src/release.js';
import { pinClock, sourceDateEpoch } from './src/reproducible.js';
import { openSecrets, secretsDirOf } from './src/secrets.js';
import { resolveSource } from './src/source.js';
import { STEPS } from './src/steps/index.js';
import { remoteLoginWarning } from './src/steps/remote-access.js';
import { stageTimer } from './src/timing.js';

const repo = fileURLToPath(new URL('.', import.meta.url));

const USAGE = `usage: npm run build-image -- [--input PATH|URL] [--out DIR] [--config FILE] [--name NAME] [--dry-run] [--release] [--rotate-secrets]
  --input    stock image: .img, .img.xz, .img.gz, .img.zst or an http(s) URL (default: the image pinned in image/stock.json)
  --out      output directory (default: out/)
  --config   JSON build config (keys: docs/config.md)
  --name     image name, <name>.img (default: the config's name, else odroid-c2-builder)
  --dry-run  list the operations each step would perform, write nothing
  --release  also write <name>.img.xz, <name>.bmap and SHA256SUMS (reproducible with SOURCE_DATE_EPOCH)
  --rotate-secrets  new CA, certificates and SSH host keys in <out>/secrets instead of reusing them (docs/host-kit.md)`;

function parseCommandLine(argv: string[]) {
  return parseOptions(argv, {
    input: { type: 'string' },
    out: { type: 'string', default: join(repo, 'out') },
    config: { type: 'string' },
    name: { type: 'string' },
    'dry-run': { type: 'boolean', default: false },
    release: { type: 'boolean', default: false },
    'rotate-secrets': { type: 'boolean', default: false },
    help: { type: 'boolean', short: 'h', default: false },
  });
}

async function main(argv: string[]): Promise<void> {
  const args = parseCommandLine(argv);
  if (args.help) {
    process.stdout.write(`${USAGE}\n`);
    return;
  }
  const epoch = sourceDateEpoch();
  if (epoch !== undefined) pinClock(epoch);
  const stage = stageTimer();
  const config = await stage('config', () => loadConfig(args.config, { name: args.name }));
  if (!args['dry-run']) await prepareOutputDir(args.out);
  const source = await stage('source', () => resolveSource({ input: args.input, cacheDir: join(repo, 'image') }));
  const layout = await stage('inspect', () => openImage(source.path));
  const paths = { secrets: secretsDirOf(args.out), cache: join(repo, 'image') };

  if (args['dry-run']) {
    const plan = await stage('plan', () => patchImage(layout, config, STEPS, { paths, dryRun: true }));
    for (const { step, operations } of plan.planned) {
      process.stdout.write(`${step}:\n${operations.map((line) => `  ${line}\n`).join('')}`);
    }
    return;
  }

  const output = await stage('copy', () => startOutput(source.path, args.out, config.name));
  // Rotated secrets are made in a fresh directory that replaces the old one only with the image.
  const secrets = await openSecrets(args.out, { rotate: args['rotate-secrets'] });
  let kit: PendingDir | undefined;
  try {
    const patched = await stage('patch', () => patchImage({ ...layout, path: output.tempPath }, config, STEPS, { paths: { ...paths, secrets: secrets.path } }));
    const image = basename(output.finalPath);
    const release = args.release ? { xz: `${image}.xz`, bmap: `${config.name}.bmap` } : undefined;
    const xzTemp = release && output.artifact(release.xz);
    // One read of the image gives its checksum and, for a release, its bmap and xz.
    const scan = await stage(release ? 'release' : 'checksum', () => scanImage(output.tempPath, { bmap: Boolean(release), xzTo: xzTemp }));
    const sha256s: Record<string, string> = { [image]: scan.sha256 };
    if (release && xzTemp && scan.bmap) {
      await writeFile(output.artifact(release.bmap), scan.bmap);
      sha256s[release.xz] = await sha256File(xzTemp);
      sha256s[release.bmap] = createHash('sha256').update(scan.bmap).digest('hex');
    }
    kit = await stage('host kit', () => writeHostKit(args.out, [config], secrets.path));
    // The image last: a <name>.img present means its secrets and host kit are there too.
    await secrets.commit();
    await kit.commit();
    const result = await stage('commit', () => output.commit(sha256s));
    const warning = remoteLoginWarning(config);
    process.stdout.write(
      `built ${result.image}\n` +
        `  from     ${source.origin}\n` +
        `  steps    ${STEPS.map((s) => s.name).join(', ')} (${patched.operations} operations, ${patched.bytesWritten} bytes written)\n` +
        `  sha256   ${scan.sha256}  (${result.checksumFiles.join(', ')})\n` +
        (release ? `  release  ${release.xz}, ${release.bmap}: flash with bmaptool copy --bmap ${release.bmap} ${release.xz} /dev/sdX\n` : '') +
        `  flash    with Etcher, or: sudo dd if=${result.image} of=/dev/sdX bs=4M conv=fsync status=progress\n` +
        `  host     ${hostKitDirOf(args.out)}: network, NFS export, SSH and docker buildx for the host; start with its README.md\n` +
        `  secrets  ${secretsDirOf(args.out)}${args['rotate-secrets'] ? ' (rotated: new CA, certificates and SSH host keys)' : ''}\n` +
        (warning ? `  warning  ${warning}\n` : ''),
    );
  } catch (error) {
    await output.discard();
    await kit?.discard();
    await secrets.discard();
    throw error;
  } finally {
    info(stage.summary());
  }
}

runMain(main);
