/**
 * Renders the mustache templates under templates/, which mirror the paths they are written to.
 * A user's copy under overlays/templates/ at the same relative path shadows the repository's.
 */
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import Mustache from 'mustache';
import { UserError } from '../errors.js';
import { readIfExists } from '../files.js';

/** The repository's templates/ directory, found from this module so the working directory does not matter. */
export const TEMPLATES_DIR = fileURLToPath(new URL('../../templates/', import.meta.url));
/** Where users put their own versions of templates (docs/customizing.md). */
export const USER_TEMPLATES_DIR = fileURLToPath(new URL('../../overlays/templates/', import.meta.url));

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
function missingNames(template: string, view: object): string[] {
  const tokens = Mustache.parse(template) as unknown as Token[];
  const missing = tokens
    .filter(([type, name]) => (type === 'name' || type === '&') && name !== '.' && lookup(view, name) === undefined)
    .map(([, name]) => name);
  return [...new Set(missing)];
}

/**
 * Renders <userDir>/<relPath> if the user made one, else templates/<relPath>, with `view`. HTML
 * escaping is off for this call only: our templates are shell scripts and config files, where
 * mustache's default (& to &amp;) would corrupt them.
 */
export async function renderTemplate(relPath: string, view: object, templatesDir = TEMPLATES_DIR, userDir = USER_TEMPLATES_DIR): Promise<string> {
  const override = path.join(userDir, relPath);
  const userTemplate = await readIfExists(override);
  const template = userTemplate ?? (await readFile(path.join(templatesDir, relPath), 'utf8'));
  const missing = missingNames(template, view);
  if (missing.length > 0 && userTemplate !== undefined) {
    // The user's copy may only use what the step provides: say what that is.
    throw new UserError(`${override} uses ${missing.join(', ')}, which the step does not provide (it provides: ${Object.keys(view).join(', ')}); fix the template`);
  }
  if (missing.length > 0) throw new Error(`template ${relPath} uses ${missing.join(', ')}, not in its view`);
  return Mustache.render(template, view, {}, { escape: (text: string) => text });
}
