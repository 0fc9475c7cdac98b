/**
 * Copies the planned ranges of the image to the device in bounded chunks, checks the bmap's
 * checksums on the way, flushes, and reads every range back from the device itself.
 */
import { spawnSync } from 'node:child_process';
import { createHash, type Hash } from 'node:crypto';
import { closeSync, constants, fsyncSync, openSync, readSync, writeSync } from 'node:fs';
import { type ByteRange, rangesBytes } from '../data-extents.js';
import { UserError, withPath } from '../errors.js';
import { progressBar } from '../log.js';
import type { BmapRange } from './bmap.js';
import { openRefusal } from './target.js';

const CHUNK = 4 * 1024 * 1024;

function readFully(fd: number, buffer: Buffer, length: number, position: number, path: string): Buffer {
  for (let done = 0; done < length; ) {
    const got = readSync(fd, buffer, done, length - done, position + done);
    if (got === 0) throw new UserError(`${path} ended at ${position + done} bytes, before the range being copied; is it truncated?`);
    done += got;
  }
  return buffer.subarray(0, length);
}

/** Each chunk of `ranges` of the file at `fd`, in order, in one reused buffer. */
function* chunksOf(fd: number, ranges: ByteRange[], path: string): Generator<{ range: number; position: number; data: Buffer }> {
  const buffer = Buffer.allocUnsafe(CHUNK);
  for (const [index, range] of ranges.entries()) {
    for (let position = range.start; position < range.end; position += CHUNK) {
      yield { range: index, position, data: readFully(fd, buffer, Math.min(CHUNK, range.end - position), position, path) };
    }
  }
}

/** Hashes the bytes of the bmap's ranges as the image streams past, and compares at each range's end. */
function bmapChecker(checked: BmapRange[], image: string) {
  let index = 0;
  let hash: Hash | undefined;
  return {
    feed(position: number, data: Buffer) {
      const end = position + data.length;
      while (index < checked.length && checked[index].start < end) {
        const range = checked[index];
        const from = Math.max(range.start, position);
        const to = Math.min(range.end, end);
        hash ??= createHash('sha256');
        hash.update(data.subarray(from - position, to - position));
        if (to < range.end) return;
        if (hash.digest('hex') !== range.sha256) {
          throw new UserError(
            `${image} does not match its .bmap at bytes ${range.start}-${range.end}: the image or the bmap changed since the build; rebuild, or remove the .bmap`,
          );
        }
        hash = undefined;
        index += 1;
      }
    },
  };
}

export interface WriteResult {
  bytes: number;
  ranges: number;
}

/** Writes `ranges` of `image` to `device`, then verifies them on the device; the device must not be in use. */
export function writeAndVerify(image: string, device: string, ranges: ByteRange[], checked: BmapRange[]): WriteResult {
  const total = rangesBytes(ranges);
  const digests: string[] = [];
  const source = openSync(image, 'r');
  let target: number;
  try {
    // O_EXCL on a block device: the kernel refuses while anything (a mount) holds it.
    target = openSync(device, constants.O_WRONLY | constants.O_EXCL);
  } catch (error) {
    closeSync(source);
    if ((error as NodeJS.ErrnoException).code === 'EBUSY')
      throw new UserError(`${device} is busy (in use by the kernel: a mount, swap, a device mapper); release it first`);
    throw openRefusal(error, device) ?? error;
  }
  try {
    const check = bmapChecker(checked, image);
    const bar = progressBar(`write ${device}`, total, { rate: true });
    let hash = createHash('sha256');
    for (const { range, position, data } of chunksOf(source, ranges, image)) {
      check.feed(position, data);
      for (let done = 0; done < data.length; ) {
        try {
          done += writeSync(target, data, done, data.length - done, position + done);
        } catch (error) {
          throw withPath(error, device);
        }
      }
      hash.update(data);
      if (position + data.length === ranges[range].end) {
        digests.push(hash.digest('hex'));
        hash = createHash('sha256');
      }
      bar.advance(data.length);
    }
    fsyncSync(target);
    bar.finish();
  } finally {
    closeSync(source);
    closeSync(target);
  }
  // Drops the kernel's cached copy of the device, so what is read back comes from the card.
  spawnSync('blockdev', ['--flushbufs', device]);
  verify(device, ranges, digests, total);
  // The kernel learns the new partition table; a device that cannot tell (a loop device without
  // partition scanning) keeps the old view until it is attached again, which harms nothing.
  spawnSync('blockdev', ['--rereadpt', device]);
  return { bytes: total, ranges: ranges.length };
}

function verify(device: string, ranges: ByteRange[], digests: string[], total: number): void {
  const fd = openSync(device, 'r');
  try {
    const bar = progressBar(`verify ${device}`, total, { rate: true });
    let hash = createHash('sha256');
    for (const { range, position, data } of chunksOf(fd, ranges, device)) {
      hash.update(data);
      if (position + data.length === ranges[range].end) {
        if (hash.digest('hex') !== digests[range]) {
          const { start, end } = ranges[range];
          throw new UserError(
            `${device} does not hold what was written at bytes ${start}-${end}: the card or its reader is failing; try another card or reader`,
          );
        }
        hash = createHash('sha256');
      }
      bar.advance(data.length);
    }
    bar.finish();
  } finally {
    closeSync(fd);
  }
}
