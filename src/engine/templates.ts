/**
 * Renders the mustache templates under templates/, which mirror the paths they are written to.
 * A user's copy under overlays/templates/ at the same relative path shadows the repository's.
 */
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import Mustache from 'mustache';
import { describeValue } from '../config/checks.js';
import { UserError } from '../errors.js';
import { readIfExists } from '../files.js';
import {
  type Escaper,
  exportsField,
  jsonValue,
  keyfileValue,
  lineText,
  noValues,
  shellWord,
  systemdValue,
  Unrenderable,
  yamlScalar,
} from '../formats/escape.js';

/** The repository's templates/ directory, found from this module so the working directory does not matter. */
export const TEMPLATES_DIR = fileURLToPath(new URL('../../templates/', import.meta.url));
/** Where users put their own versions of templates (docs/customizing.md). */
export const USER_TEMPLATES_DIR = fileURLToPath(new URL('../../overlays/templates/', import.meta.url));

/**
 * The language of each template, by its path under templates/ (a user's copy has the same path),
 * and so the escaper every value in it goes through. The first match wins; a template matching
 * none is refused, so a new template cannot be rendered without one.
 */
export const TEMPLATE_KINDS: { kind: string; paths: RegExp; escape: Escaper }[] = [
  // The host kit's README gives its commands in sh code blocks: its values are shell words.
  { kind: 'POSIX shell', paths: /\.sh$|\/usr\/local\/sbin\/|^readonly-root\/sbin\/|^host-kit\/README\.md$/, escape: shellWord },
  { kind: 'systemd unit', paths: /\.(?:service|network)$|\/systemd\/[^/]+\.conf\.d\/[^/]+\.conf$/, escape: systemdValue },
  { kind: 'NetworkManager keyfile', paths: /\.nmconnection$/, escape: keyfileValue },
  { kind: 'exports(5)', paths: /^host-kit\/exports$/, escape: exportsField },
  { kind: 'JSON', paths: /\.json$/, escape: jsonValue },
  { kind: 'YAML', paths: /\.ya?ml$/, escape: yamlScalar },
  {
    kind: 'line-oriented text',
    paths:
      /^hostname\/etc\/(?:hostname|hosts)$|\/(?:known_hosts|authorized_keys|resolv\.conf|sshd_config)$|\/(?:modprobe\.d|modules-load\.d|network\/interfaces\.d|udev\/rules\.d)\//,
    escape: lineText,
  },
  { kind: 'no values', paths: /^host-kit\/bench\/|\/apt\.conf\.d\//, escape: noValues },
];

/** The kind of the template at `relPath` (`<step>/<target path>.mustache`). */
export function templateKind(relPath: string): (typeof TEMPLATE_KINDS)[number] {
  const target = relPath.replace(/\.mustache$/, '');
  const kind = TEMPLATE_KINDS.find(({ paths }) => paths.test(target));
  if (!kind) throw new Error(`template ${relPath} has no kind in TEMPLATE_KINDS, so no escaper for its values; add it there`);
  return kind;
}

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

/** `{{{name}}}` and `{{& name}}` skip the escaper: refused anywhere in a template. */
function unescapedNames(tokens: Token[]): string[] {
  return tokens.flatMap(([type, name, , , children]) => (type === '&' ? [name] : children ? unescapedNames(children) : []));
}

/**
 * Renders <userDir>/<relPath> if the user made one, else templates/<relPath>, with `view`, every
 * value through the escaper of the template's kind (TEMPLATE_KINDS) instead of mustache's HTML
 * escaping, for this call only.
 */
export async function renderTemplate(
  relPath: string,
  view: object,
  templatesDir = TEMPLATES_DIR,
  userDir = USER_TEMPLATES_DIR,
): Promise<string> {
  const override = path.join(userDir, relPath);
  const userTemplate = await readIfExists(override);
  const template = userTemplate ?? (await readFile(path.join(templatesDir, relPath), 'utf8'));
  const source = userTemplate === undefined ? `template ${relPath}` : override;
  const { kind, escape: escapeFor } = templateKind(relPath);
  const unescaped = unescapedNames(Mustache.parse(template) as unknown as Token[]);
  if (unescaped.length > 0) {
    throw new UserError(
      `${source} renders ${unescaped.join(', ')} unescaped ({{{ }}} or {{& }}); write {{name}}, which quotes the value for ${kind}`,
    );
  }
  const missing = missingNames(template, view);
  if (missing.length > 0 && userTemplate !== undefined) {
    // The user's copy may only use what the step provides: say what that is.
    throw new UserError(
      `${override} uses ${missing.join(', ')}, which the step does not provide (it provides: ${Object.keys(view).join(', ')}); fix the template`,
    );
  }
  if (missing.length > 0) throw new Error(`template ${relPath} uses ${missing.join(', ')}, not in its view`);
  const escapeValue = (value: unknown) => {
    try {
      return escapeFor(value);
    } catch (error) {
      if (error instanceof Unrenderable)
        throw new UserError(`${source}: the value ${describeValue(value)} ${error.message}; use a plainer value`);
      throw error;
    }
  };
  return Mustache.render(template, view, {}, { escape: escapeValue });
}
