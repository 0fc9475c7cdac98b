import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { UserError } from './errors.js';

export type UsbProtocol = 'ecm' | 'eem' | 'ncm';

/** Named by the supply the board runs from; what each changes is in src/steps/power.ts and docs/power.md. */
const POWER_PROFILES = ['usb2-0.5A', 'usb3-0.9A', 'full'] as const;
export type PowerProfile = (typeof POWER_PROFILES)[number];

export interface BuildConfig {
  name: string;
  hostname: string;
  power: { profile: PowerProfile };
  usb: { deviceMac: string; hostMac: string; protocol: UsbProtocol };
  /** `ip` and `prefix` are `address` split up, for templates that need them apart. */
  network: { address: string; prefix: number; ip: string; gateway: string; dns: string[] };
  nfs: { server: string; export: string };
  docker: { bundle?: string; sha256?: string };
  ssh: { authorizedKeys: string[] };
}

/**
 * What each usb.protocol value presents to the host. Only what the stock 3.16 kernel can do:
 * g_ether (CONFIG_USB_ETH=m) has RNDIS and EEM built in and picks between them with
 * `use_eem`, which defaults to 1 there; CDC-NCM is the separate g_ncm module.
 */
export const USB_PROTOCOLS: Record<UsbProtocol, string> = {
  ecm: 'g_ether with use_eem=0: offers an RNDIS configuration (Windows; Device Manager may need "Remote NDIS Compatible Device" picked by hand) next to a CDC-ECM one (Linux, macOS), so every common host has a driver.',
  eem: 'g_ether as the stock image loads it (use_eem=1): CDC-EEM only. Linux hosts drive it (cdc_eem); macOS and Windows have no driver.',
  ncm: 'g_ncm: CDC-NCM, which batches frames per USB transfer. Linux (cdc_ncm), current macOS and Windows 11 drive it.',
};

// --- the schema ---------------------------------------------------------------------------

/** A JSON value type: its name in docs, its phrase in error messages, its runtime test. */
interface ValueType<T> {
  name: string;
  expected: string;
  accepts(value: unknown): value is T;
}

const text: ValueType<string> = {
  name: 'string',
  expected: 'a string',
  accepts: (value): value is string => typeof value === 'string',
};

const textList: ValueType<string[]> = {
  name: 'string[]',
  expected: 'an array of strings',
  accepts: (value): value is string[] => Array.isArray(value) && value.every((item) => typeof item === 'string'),
};

function oneOf<T extends string>(values: readonly T[]): ValueType<T> {
  const name = values.map((value) => JSON.stringify(value)).join(' | ');
  return { name, expected: `one of ${name}`, accepts: (value): value is T => values.includes(value as T) };
}

type Default<T> =
  | { value: T }
  /** Computed from the keys above it in the table, which are resolved first. */
  | { doc: string; derive: (config: BuildConfig) => T };

interface Setting<T> {
  /** Dotted path in the JSON file. */
  key: string;
  type: ValueType<T>;
  /** Absent: the key stays unset when the file leaves it out. */
  default?: Default<T>;
  /** Returns the value normalized, or calls `invalid` with what is wrong and what to do. */
  check?: (value: T, config: BuildConfig, key: string) => T;
  doc: string;
}

/** Thrown by checks; the resolver adds the key and the value to make it a UserError. */
class Invalid extends Error {}

function invalid(reason: string): never {
  throw new Invalid(reason);
}

// The table holds settings of different value types; each is checked against its own
// type before its `check` sees the value, so erasing T here loses nothing at runtime.
function setting<T>(entry: Setting<T>): Setting<unknown> {
  return entry as unknown as Setting<unknown>;
}

/**
 * Every config key, in resolution order: a default or check may read only keys above it.
 * Validation, defaults and docs/config.md all come from this table.
 */
const SCHEMA: Setting<unknown>[] = [
  setting({
    key: 'name',
    type: text,
    default: { value: 'odroid-c2-builder' },
    check: checkName,
    doc: 'Names the output image (`<name>.img`) and seeds the defaults of hostname, USB MACs and NFS export. `--name` overrides it.',
  }),
  setting({
    key: 'hostname',
    type: text,
    default: { doc: 'same as `name`', derive: (config) => config.name },
    check: checkHostname,
    doc: 'Host name of the device (/etc/hostname): one RFC 1123 label.',
  }),
  setting({
    key: 'power.profile',
    type: oneOf(POWER_PROFILES),
    default: { value: 'full' },
    doc: 'The supply the board runs from: `usb2-0.5A` and `usb3-0.9A` limit the CPU cores and switch the Ethernet off to stay within a USB port\'s current; `full` keeps HardKernel\'s CPU settings and the Ethernet. What each changes, and the figures behind them: [docs/power.md](power.md).',
  }),
  setting({
    key: 'usb.protocol',
    type: oneOf(Object.keys(USB_PROTOCOLS) as UsbProtocol[]),
    default: { value: 'ecm' },
    doc: 'Which USB Ethernet gadget the device presents to the host; see [USB protocols](#usb-protocols).',
  }),
  setting({
    key: 'usb.deviceMac',
    type: text,
    default: { doc: 'derived from `name`', derive: (config) => derivedMacs(config.name).device },
    check: checkMac,
    doc: 'MAC of the device end of the link (`usb0`). Fixed because g_ether otherwise picks a random one at every boot. Locally administered unicast.',
  }),
  setting({
    key: 'usb.hostMac',
    type: text,
    default: { doc: 'derived from `name`', derive: (config) => derivedMacs(config.name).host },
    check: (value, config, key) => {
      const mac = checkMac(value);
      if (mac === config.usb.deviceMac) invalid('equals usb.deviceMac; give the two ends of the link different MACs');
      return mac;
    },
    doc: 'MAC of the host end of the link. Fixed so the host keeps one interface name (Linux: `enx<mac>`) and its network settings across boots. Locally administered unicast.',
  }),
  setting({
    key: 'network.address',
    type: text,
    default: { value: '10.0.0.2/24' },
    check: checkAddress,
    doc: 'IPv4 address and prefix length of the device on the USB link (CIDR).',
  }),
  setting({
    key: 'network.gateway',
    type: text,
    default: { doc: 'first host of the subnet other than the device (`10.0.0.1`)', derive: defaultGateway },
    check: checkGateway,
    doc: 'Default route: the host end of the link, which forwards and masquerades the device\'s traffic. Must be in the device\'s subnet.',
  }),
  setting({
    key: 'network.dns',
    type: textList,
    default: { value: ['1.1.1.1'] },
    check: (value, _config, key) => {
      if (value.length === 0) invalid('is empty; list at least one IPv4 nameserver, e.g. ["1.1.1.1"]');
      return value.map((server, index) => checkItem(`${key}[${index}]`, server, checkIpv4));
    },
    doc: 'IPv4 nameservers for /etc/resolv.conf.',
  }),
  setting({
    key: 'nfs.server',
    type: text,
    default: { doc: 'same as `network.gateway`', derive: (config) => config.network.gateway },
    check: checkIpv4,
    doc: 'IPv4 address of the NFS server holding the persistent storage; an address, so the mount does not wait for DNS.',
  }),
  setting({
    key: 'nfs.export',
    type: text,
    default: { doc: '`/srv/<name>`', derive: (config) => `/srv/${config.name}` },
    check: checkExport,
    doc: 'Directory the server exports for the device\'s persistent storage (the root filesystem is read-only).',
  }),
  setting({
    key: 'docker.bundle',
    type: text,
    check: checkBundle,
    doc: 'URL (http/https) or local path of Docker\'s static `docker-<version>.tgz` for aarch64 (download.docker.com/linux/static/stable/aarch64/). Unset: the bundle pinned in image/docker.json, downloaded once (docs/docker.md).',
  }),
  setting({
    key: 'docker.sha256',
    type: text,
    check: (value, config) => {
      if (config.docker.bundle === undefined) invalid('is set but docker.bundle is not; set docker.bundle or remove docker.sha256');
      if (!/^[0-9a-f]{64}$/i.test(value)) invalid('is not a SHA-256 digest; give the 64 hex digits that `sha256sum` prints');
      return value.toLowerCase();
    },
    doc: 'Expected SHA-256 of the bundle, checked before it is used.',
  }),
  setting({
    key: 'ssh.authorizedKeys',
    type: textList,
    default: { value: [] },
    check: (value, _config, key) => value.map((line, index) => checkItem(`${key}[${index}]`, line, checkPublicKey)),
    doc: 'OpenSSH public keys (one .pub line each) allowed to log in over SSH.',
  }),
];

// --- checks -------------------------------------------------------------------------------

function checkName(value: string): string {
  // Not ending in a hyphen keeps every name a valid hostname, the default of `hostname`.
  if (!/^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$/.test(value)) {
    invalid('is not a valid name; use 1-63 lower-case letters, digits and hyphens, not starting or ending with a hyphen');
  }
  return value;
}

function checkHostname(value: string): string {
  if (!/^[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?$/.test(value)) {
    invalid('is not a valid host name; use 1-63 letters, digits and hyphens, not starting or ending with a hyphen, no dots');
  }
  return value;
}

function checkMac(value: string): string {
  if (!/^[0-9a-f]{2}([:-])[0-9a-f]{2}(\1[0-9a-f]{2}){4}$/i.test(value)) {
    invalid('is not a MAC address; write six hex octets like 02:12:34:56:78:9a');
  }
  const mac = value.toLowerCase().replaceAll('-', ':');
  const first = parseInt(mac.slice(0, 2), 16);
  if (first & 1) invalid('is a multicast MAC; use one whose first octet is even, e.g. 02');
  // Made-up MACs must not collide with a vendor's: require the locally administered bit.
  if (!(first & 2)) invalid('is not locally administered; use a first octet of the form x2, x6, xa or xe, e.g. 02');
  return mac;
}

/** A stable, distinct pair of locally administered unicast MACs for a device name. */
export function derivedMacs(name: string): { device: string; host: string } {
  const hash = createHash('sha256').update(name).digest();
  const tail = [...hash.subarray(1, 6)].map((byte) => byte.toString(16).padStart(2, '0')).join(':');
  // Same high nibble and tail; low nibble 2 vs 6 keeps both locally administered unicast and distinct.
  const high = hash[0] & 0xf0;
  const mac = (low: number) => `${(high | low).toString(16).padStart(2, '0')}:${tail}`;
  return { device: mac(0x2), host: mac(0x6) };
}

const OCTET = '(?:25[0-5]|2[0-4]\\d|1\\d\\d|[1-9]?\\d)';
const IPV4 = new RegExp(`^${OCTET}(?:\\.${OCTET}){3}$`);

export function ipv4ToNumber(ip: string): number {
  return ip.split('.').reduce((sum, octet) => sum * 256 + Number(octet), 0);
}

export function numberToIpv4(value: number): string {
  return [24, 16, 8, 0].map((shift) => Math.floor(value / 2 ** shift) % 256).join('.');
}

function checkIpv4(value: string): string {
  // Leading zeros are refused: some tools read them as octal.
  if (!IPV4.test(value)) invalid('is not an IPv4 address; write four decimal numbers 0-255 like 10.0.0.1');
  return value;
}

interface Subnet {
  ip: string;
  prefix: number;
  network: number;
  broadcast: number;
}

export function parseCidr(address: string): Subnet {
  const [ip, prefixText] = address.split('/');
  const prefix = Number(prefixText);
  const size = 2 ** (32 - prefix);
  const network = Math.floor(ipv4ToNumber(ip) / size) * size;
  return { ip, prefix, network, broadcast: network + size - 1 };
}

function checkAddress(value: string): string {
  const match = /^([^/]+)\/(\d{1,2})$/.exec(value);
  if (!match || !IPV4.test(match[1])) invalid('is not IPv4 CIDR notation; write address/prefix like 10.0.0.2/24');
  const prefix = Number(match[2]);
  // The link needs at least the device and the gateway besides network and broadcast address.
  if (prefix < 1 || prefix > 30) invalid('has a prefix length outside 1-30; use e.g. /24');
  const subnet = parseCidr(value);
  const ip = ipv4ToNumber(subnet.ip);
  if (ip === subnet.network || ip === subnet.broadcast) {
    invalid(`is the ${ip === subnet.network ? 'network' : 'broadcast'} address of its subnet; pick a host address like 10.0.0.2/24`);
  }
  return value;
}

function defaultGateway(config: BuildConfig): string {
  const subnet = parseCidr(config.network.address);
  const first = subnet.network + 1;
  return numberToIpv4(first === ipv4ToNumber(subnet.ip) ? first + 1 : first);
}

function checkGateway(value: string, config: BuildConfig): string {
  checkIpv4(value);
  const subnet = parseCidr(config.network.address);
  const gateway = ipv4ToNumber(value);
  if (gateway < subnet.network || gateway > subnet.broadcast) {
    invalid(`is outside the subnet of network.address ${config.network.address}; use the host's address on the USB link`);
  }
  if (gateway === subnet.network || gateway === subnet.broadcast) {
    invalid(`is the ${gateway === subnet.network ? 'network' : 'broadcast'} address of ${config.network.address}; use the host's address on the USB link`);
  }
  if (value === subnet.ip) invalid('equals the device\'s own network.address; use the host\'s address on the USB link');
  return value;
}

function checkExport(value: string): string {
  if (!value.startsWith('/')) invalid('is not an absolute path; write it like /srv/c2-builder');
  if (/\s/.test(value)) invalid('contains whitespace, which fstab cannot hold; pick a path without spaces');
  if (value.split('/').includes('..')) invalid('contains a .. segment; write the path without it');
  return value;
}

function checkBundle(value: string): string {
  if (value.trim() === '' || /[\r\n]/.test(value)) invalid('is not a URL or a path; give the URL or path of docker-<version>.tgz');
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(value)) {
    if (!/^https?:\/\//i.test(value) || !URL.canParse(value)) invalid('is not an http(s) URL; give an https:// URL or a local path');
  }
  return value;
}

const PUBLIC_KEY =
  /^(?:ssh-(?:ed25519|rsa|dss)|ecdsa-sha2-nistp(?:256|384|521)|sk-(?:ssh-ed25519|ecdsa-sha2-nistp256)@openssh\.com) [A-Za-z0-9+/]+={0,3}(?: [^\r\n]*)?$/;

function checkPublicKey(value: string): string {
  // Pasted `cat key.pub` output carries a trailing newline; anything else multi-line is refused.
  const line = value.trim();
  if (!PUBLIC_KEY.test(line)) invalid('does not look like an OpenSSH public key; paste one line of a .pub file, e.g. ~/.ssh/id_ed25519.pub');
  return line;
}

// --- the resolver -------------------------------------------------------------------------

function describe(value: unknown): string {
  const shown = JSON.stringify(value) ?? String(value);
  return shown.length > 60 ? `${shown.slice(0, 57)}...` : shown;
}

/** Runs a check, turning its complaint into a UserError that names the key and the value. */
function explained<T>(label: string, value: T, check: (value: T) => T): T {
  try {
    return check(value);
  } catch (error) {
    if (error instanceof Invalid) throw new UserError(`${label} ${describe(value)} ${error.message}`);
    throw error;
  }
}

/** Checks one element of a list, naming the element (`network.dns[1]`) in the error. */
function checkItem(key: string, value: string, check: (value: string) => string): string {
  return explained(`config key ${key}`, value, check);
}

const isObject = (value: unknown): value is Record<string, unknown> =>
  typeof value === 'object' && value !== null && !Array.isArray(value);

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
      throw new UserError(`config key ${key} must be an object with keys ${childrenOf(key).join(', ')}, got ${describe(value)}`);
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

/** Turns the parsed JSON of a config file into a complete, checked BuildConfig. */
export function resolveConfig(raw: unknown, overrides: { name?: string } = {}): BuildConfig {
  if (!isObject(raw)) throw new UserError(`the config must be a JSON object like {"name": "c2-builder"}, got ${describe(raw)}`);
  checkShape(raw, '');
  const given: Record<string, unknown> = { ...raw };
  const fromCommandLine = new Set<string>();
  for (const [key, value] of Object.entries(overrides)) {
    if (value === undefined) continue;
    given[key] = value;
    fromCommandLine.add(key);
  }

  // Filled in table order, so by the time a default or check reads a key it is resolved.
  const resolved: Record<string, unknown> = {};
  const config = resolved as unknown as BuildConfig;
  for (const entry of SCHEMA) {
    const label = fromCommandLine.has(entry.key) ? `--${entry.key}` : `config key ${entry.key}`;
    let value = getPath(given, entry.key);
    if (value === undefined && entry.default) {
      value = 'value' in entry.default ? structuredClone(entry.default.value) : entry.default.derive(config);
    } else if (value !== undefined && !entry.type.accepts(value)) {
      throw new UserError(`${label} must be ${entry.type.expected}, got ${describe(value)}`);
    }
    const check = entry.check;
    if (value !== undefined && check) value = explained<unknown>(label, value, (checked) => check(checked, config, entry.key));
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

/** Reads and resolves a config file; without a file, every key takes its default. */
export async function loadConfig(file: string | undefined, overrides: { name?: string } = {}): Promise<BuildConfig> {
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
    const reason = message.replace(/ in JSON at position.*$/s, '').replace(/, ".*$/s, '').replace(/\s+/g, ' ');
    throw new UserError(`config file ${file} is not valid JSON${jsonErrorLocation(source, message)}: ${reason}; fix the syntax there`);
  }
  try {
    return resolveConfig(raw, overrides);
  } catch (error) {
    if (error instanceof UserError) throw new UserError(`${file}: ${error.message}`);
    throw error;
  }
}

// --- docs ---------------------------------------------------------------------------------

/** Escapes pipes so a value stays inside its markdown table cell. */
function cell(value: string): string {
  return value.replaceAll('|', '\\|');
}

function defaultDoc(entry: Setting<unknown>): string {
  if (!entry.default) return 'unset';
  return 'value' in entry.default ? `\`${JSON.stringify(entry.default.value)}\`` : entry.default.doc;
}

/** The keys of the file format only, without BuildConfig's derived fields (ip, prefix). */
export function asConfigFile(config: BuildConfig): Record<string, unknown> {
  const file: Record<string, unknown> = {};
  for (const entry of SCHEMA) setPath(file, entry.key, getPath(config as unknown as Record<string, unknown>, entry.key));
  return file;
}

/** The whole of docs/config.md; a test keeps the checked-in file equal to it. */
export function renderConfigDoc(): string {
  const rows = SCHEMA.map((entry) =>
    `| \`${entry.key}\` | \`${cell(entry.type.name)}\` | ${cell(defaultDoc(entry))} | ${cell(entry.doc)} |`);
  const protocols = Object.entries(USB_PROTOCOLS).map(([name, doc]) => `- \`${name}\`: ${doc}`);
  return [
    '# Build configuration',
    '',
    '<!-- Generated from the schema in src/config.ts; regenerate with `npx vitest run -u test/config.test.ts`. -->',
    '',
    'Pass a JSON file with `--config FILE`. Every key is optional; unknown keys are an error.',
    '`--name NAME` overrides `name`, and with it every default derived from it.',
    '',
    '| key | type | default | meaning |',
    '|---|---|---|---|',
    ...rows,
    '',
    '## USB protocols',
    '',
    'There is no RNDIS-only choice: the stock g_ether offers RNDIS only alongside CDC-ECM, which is `ecm`.',
    '',
    ...protocols,
    '',
    '## Defaults',
    '',
    'With no config file (and no `--name`) the build uses:',
    '',
    '```json',
    JSON.stringify(asConfigFile(resolveConfig({})), null, 2),
    '```',
    '',
  ].join('\n');
}
