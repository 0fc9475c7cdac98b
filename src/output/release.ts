import { spawn } from 'node:child_process';
import { createHash, type Hash } from 'node:crypto';
import { once } from 'node:events';
import { closeSync, openSync } from 'node:fs';
import { stat } from 'node:fs/promises';
import { dirname } from 'node:path';
import { fileChunks } from '../checksum.js';
import { type ByteRange, mergeRanges } from '../data-extents.js';
import { UserError } from '../errors.js';
import { progressBar } from '../log.js';
import { killPoint } from '../timing.js';
import { PRIVATE_FILE_MODE } from './pending-output.js';

/*
 * The release pass reads the finished image exactly once and, from that one read,
 * computes its sha256, its block map for bmaptool and its xz compression.
 * The bmap lists the 4 KiB blocks that hold data and every block a file system has allocated
 * (`alsoMapped`), zeros or not: bmaptool writes only mapped blocks, and a used card keeps its old
 * bytes everywhere else, so a zero inode table or FAT sector left unmapped would read as garbage.
 * Free space stays unmapped.
 */

const BLOCK = 4096;
const ZERO = Buffer.alloc(BLOCK);

interface ScanResult {
  sha256: string;
  /** bmaptool's XML, when asked for. */
  bmap?: string;
}

interface Range {
  first: number;
  last: number;
  hash: Hash;
}

export async function scanImage(
  path: string,
  options: { bmap?: boolean; alsoMapped?: ByteRange[]; xzTo?: string } = {},
): Promise<ScanResult> {
  const { size } = await stat(path);
  const whole = createHash('sha256');
  const ranges: { first: number; last: number; sha256: string }[] = [];
  let open: Range | undefined;
  const xz = options.xzTo ? await startXz(options.xzTo) : undefined;
  const bar = progressBar(options.xzTo ? 'checksum, block map and xz' : 'checksum', size);
  const used = usedBlocks(options.alsoMapped ?? []);
  let position = 0;
  try {
    for await (const { bytes, hole } of fileChunks(path)) {
      whole.update(bytes);
      // A hole with no used block in it is unmapped whole; elsewhere block by block.
      if (options.bmap && hole && !used(position, position + bytes.length)) {
        if (open) ranges.push(closeRange(open));
        open = undefined;
      } else if (options.bmap) {
        for (let offset = 0; offset < bytes.length; offset += BLOCK) {
          const block = bytes.subarray(offset, Math.min(offset + BLOCK, bytes.length));
          const start = position + offset;
          if ((hole || block.equals(ZERO.subarray(0, block.length))) && !used(start, start + block.length)) {
            if (open) ranges.push(closeRange(open));
            open = undefined;
          } else {
            const index = start / BLOCK;
            open ??= { first: index, last: index, hash: createHash('sha256') };
            open.last = index;
            open.hash.update(block);
          }
        }
      }
      // A data chunk's buffer is reused: xz gets its own copy. A hole's zeros are never written to.
      if (xz) await xz.write(hole ? bytes : Buffer.from(bytes));
      position += bytes.length;
      bar.advance(bytes.length);
      killPoint(xz ? 'xz' : 'checksum');
    }
    if (position !== size) throw new Error(`${path} changed size while it was read`);
    if (open) ranges.push(closeRange(open));
    if (xz) await xz.finish();
    bar.finish();
  } catch (error) {
    xz?.kill();
    throw error;
  }
  return { sha256: whole.digest('hex'), bmap: options.bmap ? renderBmap(size, ranges) : undefined };
}

/** Whether bytes [start, end) meet one of `ranges`; asked with ascending starts. */
function usedBlocks(ranges: ByteRange[]): (start: number, end: number) => boolean {
  const merged = mergeRanges(ranges);
  let next = 0;
  return (start, end) => {
    while (next < merged.length && merged[next].end <= start) next++;
    return next < merged.length && merged[next].start < end;
  };
}

function closeRange(range: Range) {
  return { first: range.first, last: range.last, sha256: range.hash.digest('hex') };
}

/**
 * xz -T0: multi-threaded, and its output does not depend on the number of threads. xz writes the
 * file itself, so a full disk is its write error, reported with its exit status like any other
 * failure: a missing, killed or failing xz is the machine's problem, not a bug of this tool.
 * Resolves once xz runs.
 */
async function startXz(to: string) {
  const file = openSync(to, 'wx', PRIVATE_FILE_MODE);
  const child = spawn('xz', ['-T0', '-6', '-c', '-q'], { stdio: ['pipe', file, 'pipe'] });
  closeSync(file);
  // Both piped, as stdio says; with a file descriptor in stdio the typings no longer know that.
  const [input, errors] = [child.stdin!, child.stderr!];
  let stderr = '';
  errors.on('data', (d: Buffer) => (stderr += d.toString()));
  let ended = false;
  const exited = new Promise<void>((resolve, reject) => {
    child.on('error', (error: NodeJS.ErrnoException) => {
      const what = error.code === 'ENOENT' ? 'is not installed' : 'could not be started';
      reject(new UserError(`xz ${what} (${error.message}); install the xz-utils package to build --release images`));
    });
    child.on('close', (code, signal) => {
      if (code === 0 && ended) return resolve();
      const how = signal ? `killed by ${signal}` : `exit status ${code}`;
      const said = stderr.trim().split('\n').pop();
      reject(
        new UserError(
          `xz failed (${how})${said ? `: ${said}` : ''}; check free space in ${dirname(to)} and free memory, and that xz (xz-utils) runs`,
        ),
      );
    });
  });
  // Awaited by write() and finish(); an exit between two writes must not count as unhandled.
  exited.catch(() => {});
  // A write to an xz that has gone fails with EPIPE, which says nothing: its exit says why.
  input.on('error', () => {});
  // A missing xz is told before the image is read, not after.
  await Promise.race([new Promise((resolve) => child.once('spawn', resolve)), exited]);
  return {
    async write(data: Buffer) {
      if (!input.write(data)) await Promise.race([once(input, 'drain').catch(() => exited), exited]);
    },
    async finish() {
      ended = true;
      input.end();
      await exited;
    },
    kill() {
      child.kill();
    },
  };
}

/** bmaptool's format 2.0; the file's own checksum is taken with that field all zeros. */
function renderBmap(size: number, ranges: { first: number; last: number; sha256: string }[]): string {
  const blocks = Math.ceil(size / BLOCK);
  const mapped = ranges.reduce((sum, r) => sum + r.last - r.first + 1, 0);
  const lines = [
    '<?xml version="1.0" ?>',
    '<!-- Block map for bmaptool: the blocks of the image that hold data or that its file systems use. Written by odroid-buildx-image. -->',
    '<bmap version="2.0">',
    `    <ImageSize> ${size} </ImageSize>`,
    `    <BlockSize> ${BLOCK} </BlockSize>`,
    `    <BlocksCount> ${blocks} </BlocksCount>`,
    `    <MappedBlocksCount> ${mapped} </MappedBlocksCount>`,
    '    <ChecksumType> sha256 </ChecksumType>',
    `    <BmapFileChecksum> ${'0'.repeat(64)} </BmapFileChecksum>`,
    '    <BlockMap>',
    ...ranges.map((r) => `        <Range chksum="${r.sha256}"> ${r.first === r.last ? r.first : `${r.first}-${r.last}`} </Range>`),
    '    </BlockMap>',
    '</bmap>',
    '',
  ];
  const text = lines.join('\n');
  const checksum = createHash('sha256').update(text).digest('hex');
  return text.replace('0'.repeat(64), checksum);
}
