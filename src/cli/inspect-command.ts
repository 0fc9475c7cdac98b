/**
 * npm run inspect -- --input IMAGE [--json]
 *
 * Prints what a disk image is and which of this tool's steps it already carries, without
 * changing it.
 */

import { resolveSource } from '../artifacts/stock-image.js';
import { openImage } from '../image/open.js';
import { STEPS } from '../steps/index.js';
import { IMAGE_CACHE_DIR } from './build-flags.js';
import { formatReport, inspectImage } from './inspect.js';
import { type Flag, parseFlags, runMain, UsageError, usage } from './options.js';

const cacheDir = IMAGE_CACHE_DIR;

const INSPECT_FLAGS = [
  {
    name: 'input',
    type: 'string',
    arg: 'IMAGE',
    doc: 'the image: .img, .img.xz, .img.gz, .img.zst or an http(s) URL (compressed and downloaded ones are cached in image/)',
  },
  { name: 'json', type: 'boolean', doc: 'print the report as JSON' },
] as const satisfies readonly Flag[];

async function main(argv: string[]): Promise<void> {
  const args = parseFlags(argv, INSPECT_FLAGS);
  if (args.help) {
    process.stdout.write(`${usage('npm run inspect --', INSPECT_FLAGS)}\n`);
    return;
  }
  if (args.input === undefined) throw new UsageError('which image? pass --input IMAGE (see --help)');
  const source = await resolveSource({ input: args.input, cacheDir });
  // Name the image as the user did, not by its decompressed copy in the cache.
  const report = { ...(await inspectImage(await openImage(source.path), STEPS)), image: source.origin };
  process.stdout.write(args.json ? `${JSON.stringify(report, null, 2)}\n` : formatReport(report));
}

// inspect writes only to the image cache (downloads, decompressed images).
runMain(main, () => ({ name: `the image cache ${cacheDir}` }));
