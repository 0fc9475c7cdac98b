import {
  checkAddress,
  checkBundle,
  checkExport,
  checkGateway,
  checkHostname,
  checkIpv4,
  checkItem,
  checkMac,
  checkName,
  checkNfsServer,
  defaultGateway,
  derivedMacs,
  invalid,
} from './checks.js';
import { checkPublicKey } from './public-key.js';

export type UsbProtocol = 'ecm' | 'eem' | 'ncm';

/** Named by the supply the board runs from; what each changes is in src/steps/power.ts and docs/power.md. */
export const POWER_PROFILES = ['usb2-0.5A', 'usb3-0.9A', 'full'] as const;
export type PowerProfile = (typeof POWER_PROFILES)[number];

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
export interface ValueType<T> {
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

/** A key without a default: it stays unset when the file leaves it out. */
function unsetByDefault<T>(type: ValueType<T>): ValueType<T> & { unsetByDefault: true } {
  return { ...type, unsetByDefault: true };
}

/**
 * Every config key and its value type. BuildConfig is made from this table, so a key added here is
 * in the type, and SETTINGS below must give it its default, check and doc line.
 */
const KEYS = {
  name: text,
  hostname: text,
  board: unsetByDefault(oneOf(['odroid-c2', 'odroid-c4', 'raspberrypi'] as const)),
  'power.profile': oneOf(POWER_PROFILES),
  'usb.protocol': oneOf(Object.keys(USB_PROTOCOLS) as UsbProtocol[]),
  'usb.deviceMac': text,
  'usb.hostMac': text,
  'network.address': text,
  'network.gateway': text,
  'network.dns': textList,
  'nfs.server': text,
  'nfs.export': text,
  'nfs.dataImageSize': text,
  'docker.bundle': unsetByDefault(text),
  'docker.sha256': unsetByDefault(text),
  'ssh.authorizedKeys': textList,
};

export type ConfigKey = keyof typeof KEYS;
type Values = { [K in ConfigKey]: (typeof KEYS)[K] extends ValueType<infer T> ? T : never };
type ValueAt<K extends ConfigKey> = Values[K];
/** KEYS seen key by key, so that a generic key K finds ValueType<ValueAt<K>> in it. */
const VALUE_TYPES: { [K in ConfigKey]: ValueType<Values[K]> } = KEYS;
type UnsetByDefault<K extends ConfigKey> = (typeof KEYS)[K] extends { unsetByDefault: true } ? true : false;

/** `{ a: { b: V } }` for the key `a.b`; the leaf is optional for a key without a default. */
type Nested<Path extends string, V, Optional extends boolean> = Path extends `${infer Group}.${infer Rest}`
  ? { [G in Group]: Nested<Rest, V, Optional> }
  : Optional extends true
    ? { [L in Path]?: V }
    : { [L in Path]: V };
type Intersection<U> = (U extends unknown ? (union: U) => void : never) extends (all: infer I) => void ? I : never;
/** Merges an intersection of nested objects into one object type, for readable hovers and errors. */
type Merged<T> = T extends readonly unknown[] ? T : T extends object ? { [K in keyof T]: Merged<T[K]> } : T;

/** What the resolver adds besides the file's keys: `network.address` split up, for templates that need its parts. */
interface DerivedFields {
  network: { ip: string; prefix: number };
}

/** A resolved config: every key of the table, nested by its dotted path, plus the derived fields. */
export type BuildConfig = Merged<Intersection<{ [K in ConfigKey]: Nested<K, ValueAt<K>, UnsetByDefault<K>> }[ConfigKey]> & DerivedFields>;

export type Default<T> =
  | { value: T }
  /** Computed from the keys above it in the table, which are resolved first. */
  | { doc: string; derive: (config: BuildConfig) => T };

/** What SETTINGS says about one key: a default unless the key may stay unset, a check, a doc line. */
type Rules<K extends ConfigKey> = {
  /** Returns the value normalized, or calls `invalid` with what is wrong and what to do. */
  check?: (value: ValueAt<K>, config: BuildConfig, key: string) => ValueAt<K>;
  doc: string;
} & (UnsetByDefault<K> extends true ? { default?: never } : { default: Default<ValueAt<K>> });

/** One row of the table as the resolver and the docs read it. */
export interface Setting<T> {
  /** Dotted path in the JSON file. */
  key: ConfigKey;
  type: ValueType<T>;
  /** Absent: the key stays unset when the file leaves it out. */
  default?: Default<T>;
  check?: (value: T, config: BuildConfig, key: string) => T;
  doc: string;
}

/**
 * Every config key's default, check and doc line, in resolution order: a default or check may
 * read only keys above it. Validation, defaults and docs/config.md all come from this table.
 */
const SETTINGS: { [K in ConfigKey]: Rules<K> } = {
  name: {
    default: { value: 'odroid-c2-builder' },
    check: checkName,
    doc: 'Names the output image (`<name>.img`) and seeds the defaults of hostname, USB MACs and NFS export. `--name` overrides it.',
  },
  hostname: {
    default: { doc: 'same as `name`', derive: (config) => config.name },
    check: checkHostname,
    doc: 'Host name of the device (/etc/hostname): one RFC 1123 label.',
  },
  board: {
    doc: 'The board the image is for, when its boot files do not tell (src/boards/table.ts, [docs/boards.md](boards.md)). Unset: recognised from the image. `--board` overrides it.',
  },
  'power.profile': {
    default: { value: 'full' },
    doc: "The supply the board runs from: `usb2-0.5A` and `usb3-0.9A` limit the CPU cores and switch the Ethernet off to stay within a USB port's current; `full` keeps HardKernel's CPU settings and the Ethernet. What each changes, and the figures behind them: [docs/power.md](power.md).",
  },
  'usb.protocol': {
    default: { value: 'ecm' },
    doc: 'Which USB Ethernet gadget the device presents to the host; see [USB protocols](#usb-protocols).',
  },
  'usb.deviceMac': {
    default: { doc: 'derived from `name`', derive: (config) => derivedMacs(config.name).device },
    check: checkMac,
    doc: 'MAC of the device end of the link (`usb0`). Fixed because g_ether otherwise picks a random one at every boot. Locally administered unicast.',
  },
  'usb.hostMac': {
    default: { doc: 'derived from `name`', derive: (config) => derivedMacs(config.name).host },
    check: (value, config) => {
      const mac = checkMac(value);
      if (mac === config.usb.deviceMac) invalid('equals usb.deviceMac; give the two ends of the link different MACs');
      return mac;
    },
    doc: 'MAC of the host end of the link. Fixed so the host keeps one interface name (Linux: `enx<mac>`) and its network settings across boots. Locally administered unicast.',
  },
  'network.address': {
    default: { value: '10.0.0.2/24' },
    check: checkAddress,
    doc: 'IPv4 address and prefix length of the device on the USB link (CIDR).',
  },
  'network.gateway': {
    default: {
      doc: 'first host of the subnet other than the device (`10.0.0.1`)',
      derive: (config) => defaultGateway(config.network.address),
    },
    check: (value, config) => checkGateway(value, config.network.address),
    doc: "Default route: the host end of the link, which forwards and masquerades the device's traffic. Must be in the device's subnet.",
  },
  'network.dns': {
    default: { value: ['1.1.1.1'] },
    check: (value, _config, key) => {
      if (value.length === 0) invalid('is empty; list at least one IPv4 nameserver, e.g. ["1.1.1.1"]');
      return value.map((server, index) => checkItem(`${key}[${index}]`, server, checkIpv4));
    },
    doc: 'IPv4 nameservers for /etc/resolv.conf.',
  },
  'nfs.server': {
    default: { doc: 'same as `network.gateway`', derive: (config) => config.network.gateway },
    check: (value, config) => checkNfsServer(value, config.network.address),
    doc: 'IPv4 address of the NFS server holding the persistent storage; an address, so the mount does not wait for DNS.',
  },
  'nfs.export': {
    default: { doc: '`/srv/<name>`', derive: (config) => `/srv/${config.name}` },
    check: checkExport,
    doc: "Directory the server exports for the device's persistent storage (the root filesystem is read-only): an absolute path of names made of letters, digits and `. _ + -`.",
  },
  'nfs.dataImageSize': {
    default: { value: '32G' },
    check: (value) => (/^[1-9][0-9]{0,5}[MGT]$/.test(value) ? value : invalid('is not a size; give a number and M, G or T, e.g. "32G"')),
    doc: "Size of the sparse data image on the share that holds Docker's data (`truncate -s` syntax: `32G`); it takes room on the server only as Docker fills it ([docs/docker.md](docker.md)).",
  },
  'docker.bundle': {
    check: checkBundle,
    doc: "URL (http/https) or local path of Docker's static `docker-<version>.tgz` for aarch64 (download.docker.com/linux/static/stable/aarch64/). Unset: the bundle pinned in image/docker.json, downloaded once (docs/docker.md).",
  },
  'docker.sha256': {
    check: (value, config) => {
      if (config.docker.bundle === undefined) invalid('is set but docker.bundle is not; set docker.bundle or remove docker.sha256');
      if (!/^[0-9a-f]{64}$/i.test(value)) invalid('is not a SHA-256 digest; give the 64 hex digits that `sha256sum` prints');
      return value.toLowerCase();
    },
    doc: 'Expected SHA-256 of the bundle, checked before it is used.',
  },
  'ssh.authorizedKeys': {
    default: { value: [] },
    check: (value, _config, key) => value.map((line, index) => checkItem(`${key}[${index}]`, line, checkPublicKey)),
    doc: 'OpenSSH public keys (one .pub line each) allowed to log in over SSH: ed25519, RSA of 2048 bits or more, ECDSA, and the sk- security-key forms; each key is decoded and checked, so a truncated or mislabelled line is refused.',
  },
};

/** Row K of the table: its value type from KEYS, its rules from SETTINGS. */
function settingOf<K extends ConfigKey>(key: K): Setting<ValueAt<K>> {
  const rules: Rules<K> = SETTINGS[key];
  return { key, type: VALUE_TYPES[key], doc: rules.doc, default: rules.default, check: rules.check };
}

/** The table as rows, in SETTINGS's (resolution) order. */
export const SCHEMA = (Object.keys(SETTINGS) as ConfigKey[]).map((key) => settingOf(key));
