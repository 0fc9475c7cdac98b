/**
 * npm run flash -- IMAGE DEVICE [--yes] [--allow-non-removable]
 *
 * Writes a built image to an SD card or eMMC: only what the image holds and its file systems
 * use, then reads it all back from the card to verify it.
 */
import { spawnSync } from 'node:child_process';
import { open, stat } from 'node:fs/promises';
import { createInterface } from 'node:readline/promises';
import { rangesBytes } from '../data-extents.js';
import { UserError } from '../errors.js';
import { planWrite } from '../flash/plan.js';
import { describeTarget, formatSize, refuseUnsafeTarget, type Target } from '../flash/target.js';
import { writeAndVerify } from '../flash/write.js';
import { info } from '../log.js';
import { type Flag, type Positional, parseFlags, runMain, usage } from './options.js';

const FLASH_COMMAND = 'npm run flash --';
const FLASH_WORDS = [
  { name: 'IMAGE', doc: 'the built .img (not compressed); its <name>.bmap beside it is used when there' },
  { name: 'DEVICE', doc: "the card's whole device, such as /dev/sdX or /dev/mmcblkN (lsblk lists them)" },
] as const satisfies readonly Positional[];
const FLASH_FLAGS = [
  { name: 'yes', type: 'boolean', doc: 'write without asking (needed when standard input is not a terminal)' },
  { name: 'allow-non-removable', type: 'boolean', doc: 'write a device the kernel does not call removable (some built-in card readers)' },
] as const satisfies readonly Flag[];

/** The first bytes of the compressed forms an image travels in, which a card cannot boot. */
const COMPRESSED: [string, Buffer][] = [
  ['xz', Buffer.from([0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00])],
  ['gzip', Buffer.from([0x1f, 0x8b])],
  ['zstd', Buffer.from([0x28, 0xb5, 0x2f, 0xfd])],
];

/** The image's size, once it is a non-empty, uncompressed file. */
async function checkImage(path: string): Promise<number> {
  const file = await stat(path).catch(() => undefined);
  if (!file?.isFile()) throw new UserError(`${path} is not an image file; pass the .img the build wrote (out/<name>.img)`);
  if (file.size === 0) throw new UserError(`${path} is empty; build the image again`);
  const head = Buffer.alloc(6);
  const handle = await open(path, 'r');
  await handle.read(head, 0, head.length, 0).finally(() => handle.close());
  const compressed = COMPRESSED.find(([, magic]) => head.subarray(0, magic.length).equals(magic));
  if (compressed) throw new UserError(`${path} is ${compressed[0]}-compressed; pass the .img beside it, or decompress it first`);
  return file.size;
}

/** Shows what is on the card now and asks; only "y" or "yes" writes. */
async function confirm(target: Target, image: string): Promise<boolean> {
  const listing = spawnSync('lsblk', ['-o', 'NAME,SIZE,FSTYPE,LABEL', target.path], { encoding: 'utf8' });
  info(`${target.path}: ${target.model}, ${formatSize(target.size)}${target.removable ? ', removable' : ''}`);
  info(listing.status === 0 ? listing.stdout.trimEnd() : `partitions: ${target.partitions.join(', ') || 'none'}`);
  const prompt = createInterface({ input: process.stdin, output: process.stderr });
  try {
    const answer = await prompt.question(`Write ${image} to ${target.path}? Everything on it is lost. [y/N] `);
    return /^y(es)?$/i.test(answer.trim());
  } finally {
    prompt.close();
  }
}

async function main(argv: string[]): Promise<void> {
  const args = parseFlags(argv, FLASH_FLAGS, FLASH_WORDS);
  if (args.help) {
    process.stdout.write(`${usage(FLASH_COMMAND, FLASH_FLAGS, FLASH_WORDS)}\n`);
    return;
  }
  const [image, device] = args.words;
  const imageSize = await checkImage(image);
  const target = await describeTarget(device);
  await refuseUnsafeTarget(target, imageSize, { allowNonRemovable: args['allow-non-removable'] });
  if (!args.yes) {
    if (!process.stdin.isTTY) throw new UserError(`standard input is not a terminal, so nobody can confirm writing ${device}; pass --yes`);
    if (!(await confirm(target, image))) throw new UserError(`not confirmed; ${device} is untouched`);
  }
  const plan = await planWrite(image, imageSize);
  info(
    `flash: ${formatSize(rangesBytes(plan.ranges))} of ${formatSize(imageSize)} to write (data from ${plan.source}, and every block the file systems use)`,
  );
  const written = writeAndVerify(image, device, plan.ranges, plan.checked);
  process.stdout.write(
    `flashed ${image} to ${device}: ${written.bytes} bytes in ${written.ranges} ranges written and verified by reading them back${plan.checked.length > 0 ? `, the image matched its bmap's checksums` : ''}\n`,
  );
}

runMain(main, () => ({ name: 'the device' }));
