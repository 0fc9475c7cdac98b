/** Byte ranges [start, end) of a disk: sorted, merged, summed. */
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
