/** Reads a config file and resolves it against the schema: defaults filled in, every value checked. */
import { readFile } from 'node:fs/promises';
import { dirname, isAbsolute, resolve } from 'node:path';
import { UserError } from '../errors.js';
import { describeValue, explained, parseCidr } from './checks.js';
import { type BuildConfig, type KeyOverrides, SCHEMA, type Setting } from './schema.js';

const isObject = (value: unknown): value is Record<string, unknown> => typeof value === 'object' && value !== null && !Array.isArray(value);

/** The names directly under a group ('' is the top level), in table order. */
function childrenOf(group: string): string[] {
  const prefix = group === '' ? '' : `${group}.`;
  const names = SCHEMA.filter((entry) => entry.key.startsWith(prefix)).map((entry) => entry.key.slice(prefix.length).split('.')[0]);
  return [...new Set(names)];
}

const isLeaf = (key: string) => SCHEMA.some((entry) => entry.key === key);

/** Rejects keys the table does not know and groups that are not objects, naming the full path. */
function checkShape(object: Record<string, unknown>, group: string): void {
  const known = childrenOf(group);
  for (const [name, value] of Object.entries(object)) {
    const key = group === '' ? name : `${group}.${name}`;
    if (!known.includes(name)) {
      const where = group === '' ? 'known top-level keys' : `known keys under ${group}`;
      throw new UserError(`unknown config key ${key}; ${where}: ${known.join(', ')}`);
    }
    if (isLeaf(key)) continue;
    if (!isObject(value)) {
      throw new UserError(`config key ${key} must be an object with keys ${childrenOf(key).join(', ')}, got ${describeValue(value)}`);
    }
    checkShape(value, key);
  }
}

function getPath(object: Record<string, unknown>, key: string): unknown {
  return key.split('.').reduce<unknown>((node, name) => (isObject(node) ? node[name] : undefined), object);
}

function setPath(object: Record<string, unknown>, key: string, value: unknown): void {
  const names = key.split('.');
  const leaf = names.pop()!;
  let node = object;
  for (const name of names) {
    if (!isObject(node[name])) node[name] = {};
    node = node[name] as Record<string, unknown>;
  }
  if (value !== undefined) node[leaf] = value;
}

/** A bad value given on the command line: its message names the flag, so no file name goes before it. */
class FlagError extends UserError {}

/** What the command line gives for a row's key, and the flag it came with; undefined if nothing. */
function fromCommandLine(entry: Setting<unknown>, overrides: KeyOverrides): { flag: string; value: string } | undefined {
  const value = entry.flag && overrides[entry.flag.name];
  return entry.flag && value !== undefined ? { flag: `--${entry.flag.name}`, value } : undefined;
}

/** Turns the parsed JSON of a config file into a complete, checked BuildConfig; a key's flag wins over the file. */
export function resolveConfig(raw: unknown, overrides: KeyOverrides = {}): BuildConfig {
  if (!isObject(raw)) throw new UserError(`the config must be a JSON object like {"name": "c2-builder"}, got ${describeValue(raw)}`);
  checkShape(raw, '');

  // Filled in table order, so by the time a default or check reads a key it is resolved.
  const resolved: Record<string, unknown> = {};
  // The one place the table's types are set aside, for both reasons a loop over it has: its rows
  // have different value types, and the config is built key by key. Each value passes its row's
  // `type.accepts` before its `check` sees it, and BuildConfig is made from the same table, so
  // when the loop is done `resolved` is a complete BuildConfig (checks and defaults see the keys
  // above them filled in, which the table's order promises).
  const rows = SCHEMA as Setting<unknown>[];
  const config = resolved as BuildConfig;
  for (const entry of rows) {
    const override = fromCommandLine(entry, overrides);
    const label = override?.flag ?? `config key ${entry.key}`;
    let value = override ? override.value : getPath(raw, entry.key);
    if (value === undefined && entry.default) {
      value = 'value' in entry.default ? structuredClone(entry.default.value) : entry.default.derive(config);
    } else if (value !== undefined && !entry.type.accepts(value)) {
      const message = `${label} must be ${entry.type.expected}, got ${describeValue(value)}`;
      throw override ? new FlagError(message) : new UserError(message);
    }
    const check = entry.check;
    try {
      if (value !== undefined && check) value = explained<unknown>(label, value, (checked) => check(checked, config, entry.key));
    } catch (error) {
      if (error instanceof UserError && override) throw new FlagError(error.message);
      throw error;
    }
    setPath(resolved, entry.key, value);
  }
  const { ip, prefix } = parseCidr(config.network.address);
  return { ...config, network: { ...config.network, ip, prefix } };
}

/** Where a JSON.parse error points, as line and column, when V8 says "at position N". */
function jsonErrorLocation(source: string, message: string): string {
  const match = / at position (\d+)/.exec(message);
  const position = match ? Number(match[1]) : /end of JSON input/.test(message) ? source.length : undefined;
  if (position === undefined) return '';
  const before = source.slice(0, position).split('\n');
  return ` at line ${before.length}, column ${before[before.length - 1].length + 1}`;
}

/**
 * A local path in a config file (docker.bundle) is relative to the file's directory, as in
 * tsconfig.json or compose files: a config beside its bundle works from any directory.
 */
function relativeToFile(file: string, config: BuildConfig): BuildConfig {
  const bundle = config.docker.bundle;
  if (bundle === undefined || isAbsolute(bundle) || /^https?:\/\//i.test(bundle)) return config;
  return { ...config, docker: { ...config.docker, bundle: resolve(dirname(file), bundle) } };
}

/** Reads and resolves a config file; without a file, every key takes its default. */
export async function loadConfig(file: string | undefined, overrides: KeyOverrides = {}): Promise<BuildConfig> {
  if (file === undefined) return resolveConfig({}, overrides);
  let source: string;
  try {
    source = await readFile(file, 'utf8');
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') throw new UserError(`config file ${file} does not exist; check the --config path`);
    throw new UserError(`cannot read config file ${file} (${code ?? String(error)}); check the --config path`);
  }
  // Editors on Windows may save a byte-order mark, which JSON.parse rejects.
  source = source.replace(/^\uFEFF/, '');
  let raw: unknown;
  try {
    raw = JSON.parse(source);
  } catch (error) {
    const message = (error as Error).message;
    // V8 quotes the offending text, which may span lines; keep only the reason.
    const reason = message
      .replace(/ in JSON at position.*$/s, '')
      .replace(/, ".*$/s, '')
      .replace(/\s+/g, ' ');
    throw new UserError(`config file ${file} is not valid JSON${jsonErrorLocation(source, message)}: ${reason}; fix the syntax there`);
  }
  try {
    return relativeToFile(file, resolveConfig(raw, overrides));
  } catch (error) {
    if (error instanceof UserError && !(error instanceof FlagError)) throw new UserError(`${file}: ${error.message}`);
    throw error;
  }
}

/** The keys of the file format only, without BuildConfig's derived fields (ip, prefix). */
export function asConfigFile(config: BuildConfig): Record<string, unknown> {
  const file: Record<string, unknown> = {};
  for (const entry of SCHEMA) setPath(file, entry.key, getPath(config, entry.key));
  return file;
}
