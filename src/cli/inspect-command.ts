/**
 * npm run inspect -- --input IMAGE [--json]
 *
 * Prints what a disk image is and which of this tool's steps it already carries, without
 * changing it.
 */
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseOptions, runMain } from './options.js';
import { openImage } from '../image/open.js';
import { UserError } from '../errors.js';
import { formatReport, inspectImage } from './inspect.js';
import { resolveSource } from '../artifacts/stock-image.js';
import { STEPS } from '../steps/index.js';

const repo = fileURLToPath(new URL('../..', import.meta.url));
const cacheDir = join(repo, 'image');

const USAGE = `usage: npm run inspect -- --input IMAGE [--json]
  --input  the image: .img, .img.xz, .img.gz, .img.zst or an http(s) URL (compressed and downloaded ones are cached in image/)
  --json   print the report as JSON`;

async function main(argv: string[]): Promise<void> {
  const args = parseOptions(argv, {
    input: { type: 'string' },
    json: { type: 'boolean', default: false },
    help: { type: 'boolean', short: 'h', default: false },
  });
  if (args.help) {
    process.stdout.write(`${USAGE}\n`);
    return;
  }
  if (args.input === undefined) throw new UserError('which image? pass --input IMAGE (see --help)');
  const source = await resolveSource({ input: args.input, cacheDir });
  // Name the image as the user did, not by its decompressed copy in the cache.
  const report = { ...(await inspectImage(await openImage(source.path), STEPS)), image: source.origin };
  process.stdout.write(args.json ? `${JSON.stringify(report, null, 2)}\n` : formatReport(report));
}

// inspect writes only to the image cache (downloads, decompressed images).
runMain(main, () => ({ name: `the image cache ${cacheDir}` }));
