import { readdirSync, readFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { REPO } from './support/cli.js';

// CI (with CI set) must run every test: a test that lacks what it needs may skip only through
// skipWithout (test/support/images.ts), which fails under CI instead of skipping.
function testSources(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) return testSources(path);
    return entry.name.endsWith('.ts') ? [path] : [];
  });
}

/** Each skip in a test source whose condition is not a constant made by skipWithout. */
function unguardedSkips(source: string): string[] {
  const guards = new Set([...source.matchAll(/\bconst (\w+) = skipWithout\(/g)].map((m) => m[1]));
  return [...source.matchAll(/\b(?:describe|it|test)\.(skipIf|runIf|skip|todo)\(([^)]*)/g)]
    .filter(([, kind, condition]) => !(kind === 'skipIf' && guards.has(condition.trim())))
    .map(([call]) => call);
}

describe('skipped tests', () => {
  it('skip only through skipWithout, so CI never passes with a test unrun', () => {
    // This file's own examples below are the exception.
    const sources = testSources(join(REPO, 'test')).filter((path) => path !== fileURLToPath(import.meta.url));
    const found = sources.flatMap((path) => unguardedSkips(readFileSync(path, 'utf8')).map((call) => `${relative(REPO, path)}: ${call}`));
    expect(found).toEqual([]);
  });

  it('would find a direct skipIf, a runIf and a skip', () => {
    expect(unguardedSkips("const noX = skipWithout({ x: false });\ndescribe.skipIf(noX)('a', () => {});")).toEqual([]);
    expect(unguardedSkips("describe.skipIf(!existsSync('/dev/full'))('a', () => {});")).toEqual([
      "describe.skipIf(!existsSync('/dev/full'",
    ]);
    expect(unguardedSkips("it.runIf(here)('a', () => {});\nit.skip('b', () => {});")).toHaveLength(2);
  });
});
