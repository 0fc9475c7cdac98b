/**
 * What a flash writes: the image's data (the ranges its `.bmap` maps, else its data extents as
 * SEEK_DATA/SEEK_HOLE find them) together with every range its file systems use (used-blocks.ts).
 */
import { readFile } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { type ByteRange, dataExtents, mergeRanges } from '../data-extents.js';
import { UserError } from '../errors.js';
import { usedRanges } from '../image/used-blocks.js';
import { releaseFiles } from '../output/pending-output.js';
import { type BmapRange, parseBmap } from './bmap.js';

export interface WritePlan {
  /** Merged, sorted: what is written and then read back. */
  ranges: ByteRange[];
  /** Where the data ranges came from, for the user. */
  source: string;
  /** The bmap's ranges with their sha256, checked against the image as it is read. */
  checked: BmapRange[];
}

/** `<name>.bmap` beside `<name>.img`, as --release writes it. */
export const bmapPathOf = (image: string) => join(dirname(image), releaseFiles(basename(image).replace(/\.img$/, '')).bmap);

async function readIfExists(path: string): Promise<string | undefined> {
  try {
    return await readFile(path, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw error;
  }
}

export async function planWrite(image: string, imageSize: number): Promise<WritePlan> {
  const bmapPath = bmapPathOf(image);
  const bmapText = await readIfExists(bmapPath);
  const bmap = bmapText === undefined ? undefined : parseBmap(bmapText, bmapPath);
  if (bmap && bmap.imageSize !== imageSize) {
    throw new UserError(
      `${bmapPath} is for an image of ${bmap.imageSize} bytes, ${image} has ${imageSize}: it belongs to another build; remove it or rebuild with --release`,
    );
  }
  const data = bmap ? bmap.ranges : await dataExtents(image);
  const ranges = mergeRanges([...data, ...(await usedRanges(image))].map((r) => ({ start: r.start, end: Math.min(r.end, imageSize) })));
  return { ranges, source: bmap ? bmapPath : "the image's data extents", checked: bmap ? bmap.ranges.filter((r) => r.sha256) : [] };
}
