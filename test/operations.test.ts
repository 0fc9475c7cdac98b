import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { applyOperations, type Partitions } from '../src/engine/apply.js';
import { describeOperation, type Operation } from '../src/engine/operations.js';
import { applyTextChange, type TextChange } from '../src/formats/text-changes.js';
import { REPO } from './support/cli.js';

const source = (path: string) => readFileSync(join(REPO, path), 'utf8');

/** The body of `function name` in a source: from its line to the next line that closes a top-level block. */
function functionBody(text: string, name: string): string {
  const start = text.indexOf(`function ${name}(`);
  if (start < 0) throw new Error(`no function ${name}`);
  return text.slice(start, text.indexOf('\n}\n', start));
}

const cases = (body: string) => [...body.matchAll(/^\s*case '([a-z-]+)':/gm)].map((m) => m[1]).sort();

describe('operation kinds', () => {
  const union = /export type Operation =([\s\S]*?);\n\n/.exec(source('src/engine/operations.ts'))?.[1] ?? '';
  const kinds = [...union.matchAll(/\bop: '([a-z-]+)'/g)].map((m) => m[1]).sort();

  it('each has a case in the applier and in describeOperation (and tsc fails on a missing one)', () => {
    expect(kinds.length).toBeGreaterThan(0);
    expect(cases(functionBody(source('src/engine/apply.ts'), 'applyOperations'))).toEqual(kinds);
    expect(cases(functionBody(source('src/engine/operations.ts'), 'describeOperation'))).toEqual(kinds);
  });

  it('an unknown kind stops the applier and the description instead of passing unseen', async () => {
    const unknown = { op: 'chmod', on: 'rootfs', path: '/etc/x', mode: 0o600 } as unknown as Operation;
    await expect(applyOperations({} as Partitions, [unknown])).rejects.toThrow('unknown operation: chmod');
    expect(() => describeOperation(unknown)).toThrow('unknown operation: chmod');
  });
});

describe('text change kinds', () => {
  const text = source('src/formats/text-changes.ts');
  const union = /export type TextChange =([\s\S]*?);\n\n/.exec(text)?.[1] ?? '';
  const kinds = [...union.matchAll(/\bchange: '([a-z0-9-]+)'/g)].map((m) => m[1]).sort();

  it('each has a case where the change is made and where it is described (and tsc fails on a missing one)', () => {
    expect(kinds.length).toBeGreaterThan(10);
    const caseNames = (body: string) => [...body.matchAll(/^\s*case '([a-z0-9-]+)':/gm)].map((m) => m[1]).sort();
    expect(caseNames(functionBody(text, 'applyTextChange'))).toEqual(kinds);
    expect(caseNames(functionBody(text, 'describeTextChange'))).toEqual(kinds);
  });

  it('an unknown change stops the build instead of leaving the file as it was', () => {
    const unknown = { change: 'sed', script: 's/a/b/' } as unknown as TextChange;
    expect(() => applyTextChange('a\n', unknown)).toThrow('unknown text change: sed');
    expect(() => describeOperation({ op: 'edit', on: 'rootfs', path: '/etc/x', change: unknown })).toThrow('unknown text change: sed');
  });
});
