import { expect } from 'vitest';

/** [line index, new text] of each line that differs; the line count must not change. */
export function changedLines(before: string, after: string): [number, string][] {
  const a = before.split('\n');
  const b = after.split('\n');
  expect(b).toHaveLength(a.length);
  return b.flatMap((line, i): [number, string][] => (line === a[i] ? [] : [[i, line]]));
}

/** Index of the first line matching `pattern`, -1 if none. */
export const lineIndex = (text: string, pattern: RegExp) => text.split('\n').findIndex((line) => pattern.test(line));
