/**
 * The tree's layers, held to what each folder's README declares ("May import: ..."): an import
 * against that order, an import cycle, too many loose files or an oversized module fails here.
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';

const SRC = resolve(__dirname, '../src');
const MAX_LINES = 400;
const MAX_LOOSE_FILES = 6;

function sourceFiles(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) return sourceFiles(path);
    return name.endsWith('.ts') && !name.endsWith('.d.ts') ? [path] : [];
  });
}

/** The layer a source file belongs to: its top folder under src/, or `base` for a loose file. */
const layerOf = (file: string) => {
  const parts = relative(SRC, file).split('/');
  return parts.length === 1 ? 'base' : parts[0];
};

/**
 * Relative imports of a file, static and dynamic, `import type` included, resolved to .ts paths.
 * A type-only import vanishes at run time, but two modules that need each other's declarations
 * are still one module split in two.
 */
function importsOf(file: string): string[] {
  const text = readFileSync(file, 'utf8');
  const specs = [...text.matchAll(/(?:from|import)\s*\(?\s*'(\.{1,2}\/[^']+)'/g)].map((m) => m[1]);
  return specs.map((spec) => resolve(dirname(file), spec).replace(/\.js$/, '.ts'));
}

const files = sourceFiles(SRC);
const layers = readdirSync(SRC).filter((name) => statSync(join(SRC, name)).isDirectory() && name !== 'types');

function allowedImports(layer: string): string[] {
  const readme = readFileSync(join(SRC, layer, 'README.md'), 'utf8');
  const line = readme.match(/^May import: (.*)$/m);
  if (!line) throw new Error(`src/${layer}/README.md has no "May import:" line`);
  return line[1].split(',').map((name) => name.trim());
}

describe('the layers of src/', () => {
  it('has a README for each layer naming existing layers', () => {
    for (const layer of layers) {
      for (const allowed of allowedImports(layer)) expect(['base', ...layers], `src/${layer}/README.md`).toContain(allowed);
    }
  });

  it('imports only from the layers each README allows', () => {
    const wrong: string[] = [];
    for (const file of files) {
      const from = layerOf(file);
      const allowed = from === 'base' ? ['base'] : allowedImports(from);
      for (const target of importsOf(file)) {
        if (!target.startsWith(SRC)) continue;
        const to = layerOf(target);
        if (to !== from && !allowed.includes(to)) wrong.push(`${relative(SRC, file)} -> ${relative(SRC, target)}`);
      }
    }
    expect(wrong).toEqual([]);
  });

  it('has no import cycle', () => {
    const graph = new Map(files.map((file) => [file, importsOf(file).filter((target) => target.startsWith(SRC))]));
    const state = new Map<string, 'open' | 'done'>();
    const cycles: string[] = [];
    const visit = (file: string, path: string[]) => {
      if (state.get(file) === 'done') return;
      if (state.get(file) === 'open') {
        cycles.push([...path.slice(path.indexOf(file)), file].map((f) => relative(SRC, f)).join(' -> '));
        return;
      }
      state.set(file, 'open');
      for (const next of graph.get(file) ?? []) visit(next, [...path, file]);
      state.set(file, 'done');
    };
    for (const file of files) visit(file, []);
    expect(cycles).toEqual([]);
  });

  it(`keeps at most ${MAX_LOOSE_FILES} loose files and no module over ${MAX_LINES} lines`, () => {
    expect(files.filter((file) => layerOf(file) === 'base').length).toBeLessThanOrEqual(MAX_LOOSE_FILES);
    const long = files.filter((file) => readFileSync(file, 'utf8').split('\n').length > MAX_LINES).map((file) => relative(SRC, file));
    expect(long).toEqual([]);
  });
});
