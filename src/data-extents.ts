/**
 * Where a sparse file holds data. Everything outside these extents is a hole, which reads as
 * zeros: a flash need not write it, a checksum need not read it from the disk. Node has no lseek,
 * so perl (perl-base, in every Debian and Ubuntu) asks the kernel with SEEK_DATA (3) and
 * SEEK_HOLE (4); a file system without holes reports the whole file as one extent.
 */
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { UserError } from './errors.js';

const run = promisify(execFile);

/** Bytes [start, end) of a file or disk. */
export interface ByteRange {
  start: number;
  end: number;
}

/** `ranges` sorted, with overlapping and touching ones merged, empty ones dropped. */
export function mergeRanges(ranges: ByteRange[]): ByteRange[] {
  const sorted = ranges.filter((r) => r.end > r.start).sort((a, b) => a.start - b.start);
  const merged: ByteRange[] = [];
  for (const range of sorted) {
    const last = merged.at(-1);
    if (last && range.start <= last.end) last.end = Math.max(last.end, range.end);
    else merged.push({ ...range });
  }
  return merged;
}

export const rangesBytes = (ranges: ByteRange[]) => ranges.reduce((sum, r) => sum + r.end - r.start, 0);

const SCRIPT =
  'open(my $f, "<", $ARGV[0]) or die "$!\\n"; my $size = -s $f; my $p = 0;' +
  ' while ($p < $size) { my $d = sysseek($f, $p, 3); last unless defined $d; my $h = sysseek($f, $d, 4); print $d + 0, " ", $h + 0, "\\n"; $p = $h + 0; }';

/** The data extents of `path`, sorted, within its size at the time of the call. */
export async function dataExtents(path: string): Promise<ByteRange[]> {
  let stdout: string;
  try {
    ({ stdout } = await run('perl', ['-e', SCRIPT, path], { maxBuffer: 256 * 1024 * 1024 }));
  } catch (error) {
    throw new UserError(`cannot list the data extents of ${path} (${(error as Error).message.split('\n')[0]}); install perl`);
  }
  return stdout
    .trim()
    .split('\n')
    .filter(Boolean)
    .map((line) => {
      const [start, end] = line.split(' ').map(Number);
      return { start, end };
    });
}
