/** Renders the mustache templates under templates/, which mirror the paths they are written to. */
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import Mustache from 'mustache';

/** The repository's templates/ directory, found from this module so the working directory does not matter. */
export const TEMPLATES_DIR = fileURLToPath(new URL('../templates/', import.meta.url));

type Token = [type: string, value: string, start: number, end: number, children?: Token[]];

function lookup(view: object, name: string): unknown {
  let value: unknown = view;
  for (const key of name.split('.')) {
    if (value === null || typeof value !== 'object' || !(key in value)) return undefined;
    value = (value as Record<string, unknown>)[key];
  }
  return value;
}

/** `{{name}}` outside sections must be in the view: mustache renders a missing name as '' without a word. */
function checkNamesDefined(template: string, view: object, relPath: string): void {
  const tokens = Mustache.parse(template) as unknown as Token[];
  const missing = tokens
    .filter(([type, name]) => (type === 'name' || type === '&') && name !== '.' && lookup(view, name) === undefined)
    .map(([, name]) => name);
  if (missing.length > 0) throw new Error(`template ${relPath} uses ${[...new Set(missing)].join(', ')}, not in its view`);
}

/**
 * Renders templates/<relPath> with `view`. HTML escaping is off for this call only: our templates
 * are shell scripts and config files, where mustache's default (& to &amp;) would corrupt them.
 */
export async function renderTemplate(relPath: string, view: object, templatesDir = TEMPLATES_DIR): Promise<string> {
  const template = await readFile(path.join(templatesDir, relPath), 'utf8');
  checkNamesDefined(template, view, relPath);
  return Mustache.render(template, view, {}, { escape: (text: string) => text });
}
