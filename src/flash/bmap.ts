/**
 * The block map bmaptool reads and `--release` writes beside the image (`<name>.bmap`): which
 * blocks of the image hold data, with a sha256 per range in format 2.0.
 */

import type { ByteRange } from '../data-extents.js';
import { UserError } from '../errors.js';

export interface BmapRange extends ByteRange {
  /** Hex sha256 of the range's bytes, when the bmap has one. */
  sha256?: string;
}

export interface Bmap {
  imageSize: number;
  ranges: BmapRange[];
}

const field = (text: string, name: string) => new RegExp(`<${name}>\\s*([^<]*?)\\s*</${name}>`).exec(text)?.[1];

export function parseBmap(text: string, path: string): Bmap {
  const bad = (what: string) =>
    new UserError(
      `${path} is not a usable block map (${what}); remove it to flash by the image's own data extents, or make it again with bmaptool create`,
    );
  const imageSize = Number(field(text, 'ImageSize'));
  const blockSize = Number(field(text, 'BlockSize'));
  if (!Number.isSafeInteger(imageSize) || !Number.isSafeInteger(blockSize) || blockSize <= 0) throw bad('no ImageSize or BlockSize');
  const checksumType = field(text, 'ChecksumType');
  if (checksumType !== undefined && checksumType !== 'sha256') throw bad(`checksum type ${checksumType}, not sha256`);
  const ranges: BmapRange[] = [];
  for (const [, attributes, span] of text.matchAll(/<Range([^>]*)>\s*([^<]*?)\s*<\/Range>/g)) {
    const bounds = /^(\d+)(?:-(\d+))?$/.exec(span);
    if (!bounds) throw bad(`range "${span}"`);
    const first = Number(bounds[1]);
    const last = Number(bounds[2] ?? bounds[1]);
    const sha256 = /chksum="([0-9a-f]{64})"/.exec(attributes)?.[1];
    const range = { start: first * blockSize, end: Math.min((last + 1) * blockSize, imageSize), sha256 };
    if (last < first || range.start >= imageSize || (ranges.length > 0 && range.start < ranges.at(-1)!.end))
      throw bad(`range ${span} out of order or beyond the image`);
    ranges.push(range);
  }
  return { imageSize, ranges };
}
