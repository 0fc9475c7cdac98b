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

export const text: ValueType<string> = {
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
export function unsetByDefault<T>(type: ValueType<T>): ValueType<T> & { unsetByDefault: true } {
  return { ...type, unsetByDefault: true };
}

export type Default<T> =
  | { value: T }
  /** Computed from the keys above it in the table, which are resolved first. */
  | { doc: string; derive: (config: BuildConfig) => T };

/** What a row says about its key besides the value type: its default, check and doc line. */
type Rules<T, Unset extends boolean> = {
  /** Returns the value normalized, or calls `invalid` with what is wrong and what to do. */
  check?: (value: T, config: BuildConfig, key: string) => T;
  doc: string;
} & (Unset extends true ? { default?: never } : { default: Default<T> });

/** A flag of `npm run build-image` that sets a key, over the file's value: `--<name> <arg>`, and its --help line. */
export interface KeyFlag {
  name: string;
  arg: string;
  doc: string;
}

type ValueOf<V> = V extends ValueType<infer T> ? T : never;
type UnsetOf<V> = V extends { unsetByDefault: true } ? true : false;

/**
 * One row of the table: a value type and the rules for its values, a default required unless the
 * type is unsetByDefault, and the flag that sets it if one does (its name kept as a literal type, for
 * the types of the parsed command line). The type alone says what T is (NoInfer): a rule cannot widen it.
 * Exported, with `text` and `unsetByDefault`, for its type tests in test/config.test.ts.
 */
export function row<V extends ValueType<unknown>, const F extends KeyFlag = never>(
  type: V,
  rules: NoInfer<Rules<ValueOf<V>, UnsetOf<V>>> & { flag?: F },
) {
  return { type, ...rules };
}

/**
 * Every config key, once: its value type, default, check, doc line and the flag that sets it, in
 * resolution order (a default or check may read only keys above it). BuildConfig, validation,
 * defaults, docs/config.md and the build's key flags all come from this table.
 *
 * A function here that reads `config` declares its return type. TypeScript would otherwise work
 * it out from the body while it works out the table's type, and the body's `config.name` needs
 * BuildConfig, which is made from the table: error TS7022, "'TABLE' implicitly has type 'any'".
 */
const TABLE = {
  name: row(text, {
    default: { value: 'odroid-c2-builder' },
    check: checkName,
    doc: 'Names the output image (`<name>.img`) and seeds the defaults of hostname, USB MACs and NFS export.',
    flag: { name: 'name', arg: 'NAME', doc: "image name, <name>.img (default: the config's name, else odroid-c2-builder)" },
  }),
  hostname: row(text, {
    default: { doc: 'same as `name`', derive: (config): string => config.name },
    check: checkHostname,
    doc: 'Host name of the device (/etc/hostname): one RFC 1123 label.',
  }),
  board: row(unsetByDefault(oneOf(['odroid-c2', 'odroid-c4', 'raspberrypi'] as const)), {
    doc: 'The board the image is for, when its boot files do not tell (src/boards/table.ts, [docs/boards.md](boards.md)). Unset: recognised from the image.',
    flag: {
      name: 'board',
      arg: 'BOARD',
      doc: "the board the image is for when its boot files do not tell: odroid-c2, odroid-c4 or raspberrypi (default: the config's board, else recognised; docs/boards.md)",
    },
  }),
  'power.profile': row(oneOf(POWER_PROFILES), {
    default: { value: 'full' },
    doc: "The supply the board runs from: `usb2-0.5A` and `usb3-0.9A` limit the CPU cores and switch the Ethernet off to stay within a USB port's current; `full` keeps HardKernel's CPU settings and the Ethernet. What each changes, and the figures behind them: [docs/power.md](power.md).",
  }),
  'usb.protocol': row(oneOf(Object.keys(USB_PROTOCOLS) as UsbProtocol[]), {
    default: { value: 'ecm' },
    doc: 'Which USB Ethernet gadget the device presents to the host; see [USB protocols](#usb-protocols).',
  }),
  'usb.deviceMac': row(text, {
    default: { doc: 'derived from `name`', derive: (config): string => derivedMacs(config.name).device },
    check: checkMac,
    doc: 'MAC of the device end of the link (`usb0`). Fixed because g_ether otherwise picks a random one at every boot. Locally administered unicast.',
  }),
  'usb.hostMac': row(text, {
    default: { doc: 'derived from `name`', derive: (config): string => derivedMacs(config.name).host },
    check: (value, config): string => {
      const mac = checkMac(value);
      if (mac === config.usb.deviceMac) invalid('equals usb.deviceMac; give the two ends of the link different MACs');
      return mac;
    },
    doc: 'MAC of the host end of the link. Fixed so the host keeps one interface name (Linux: `enx<mac>`) and its network settings across boots. Locally administered unicast.',
  }),
  'network.address': row(text, {
    default: { value: '10.0.0.2/24' },
    check: checkAddress,
    doc: 'IPv4 address and prefix length of the device on the USB link (CIDR).',
  }),
  'network.gateway': row(text, {
    default: {
      doc: 'first host of the subnet other than the device (`10.0.0.1`)',
      derive: (config): string => defaultGateway(config.network.address),
    },
    check: (value, config): string => checkGateway(value, config.network.address),
    doc: "Default route: the host end of the link, which forwards and masquerades the device's traffic. Must be in the device's subnet.",
  }),
  'network.dns': row(textList, {
    default: { value: ['1.1.1.1'] },
    check: (value, _config, key) => {
      if (value.length === 0) invalid('is empty; list at least one IPv4 nameserver, e.g. ["1.1.1.1"]');
      return value.map((server, index) => checkItem(`${key}[${index}]`, server, checkIpv4));
    },
    doc: 'IPv4 nameservers for /etc/resolv.conf.',
  }),
  'nfs.server': row(text, {
    default: { doc: 'same as `network.gateway`', derive: (config): string => config.network.gateway },
    check: (value, config): string => checkNfsServer(value, config.network.address),
    doc: 'IPv4 address of the NFS server holding the persistent storage; an address, so the mount does not wait for DNS.',
  }),
  'nfs.export': row(text, {
    default: { doc: '`/srv/<name>`', derive: (config): string => `/srv/${config.name}` },
    check: checkExport,
    doc: "Directory the server exports for the device's persistent storage (the root filesystem is read-only): an absolute path of names made of letters, digits and `. _ + -`.",
  }),
  'nfs.dataImageSize': row(text, {
    default: { value: '32G' },
    check: (value) => (/^[1-9][0-9]{0,5}[MGT]$/.test(value) ? value : invalid('is not a size; give a number and M, G or T, e.g. "32G"')),
    doc: "Size of the sparse data image on the share that holds Docker's data (`truncate -s` syntax: `32G`); it takes room on the server only as Docker fills it ([docs/docker.md](docker.md)).",
  }),
  'docker.bundle': row(unsetByDefault(text), {
    check: checkBundle,
    doc: "URL (http/https) or local path of Docker's static `docker-<version>.tgz` for aarch64 (download.docker.com/linux/static/stable/aarch64/). Unset: the bundle pinned in image/docker.json, downloaded once (docs/docker.md).",
  }),
  'docker.sha256': row(unsetByDefault(text), {
    check: (value, config): string => {
      if (config.docker.bundle === undefined) invalid('is set but docker.bundle is not; set docker.bundle or remove docker.sha256');
      if (!/^[0-9a-f]{64}$/i.test(value)) invalid('is not a SHA-256 digest; give the 64 hex digits that `sha256sum` prints');
      return value.toLowerCase();
    },
    doc: 'Expected SHA-256 of the bundle, checked before it is used.',
  }),
  'ssh.authorizedKeys': row(textList, {
    default: { value: [] },
    check: (value, _config, key) => value.map((line, index) => checkItem(`${key}[${index}]`, line, checkPublicKey)),
    doc: 'OpenSSH public keys (one .pub line each) allowed to log in over SSH: ed25519, RSA of 2048 bits or more, ECDSA, and the sk- security-key forms; each key is decoded and checked, so a truncated or mislabelled line is refused.',
  }),
};

export type ConfigKey = keyof typeof TABLE;
type ValueAt<K extends ConfigKey> = ValueOf<(typeof TABLE)[K]['type']>;
type UnsetByDefault<K extends ConfigKey> = UnsetOf<(typeof TABLE)[K]['type']>;

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

type ResolvedKeys = Merged<Intersection<{ [K in ConfigKey]: Nested<K, ValueAt<K>, UnsetByDefault<K>> }[ConfigKey]> & DerivedFields>;

/**
 * A resolved config: every key of the table, nested by its dotted path, plus the derived fields.
 * An interface, not a type alias: the table's functions take a BuildConfig, and TypeScript resolves
 * an interface's base type only when a member is looked up, where an alias would be computed
 * from the table while the table's own type is being worked out.
 */
export interface BuildConfig extends ResolvedKeys {}

/** The names of the flags that set a key. */
export type KeyFlagName = NonNullable<(typeof TABLE)[ConfigKey]['flag']>['name'];

/** What the command line gives for keys, by flag name; a value given wins over the file's. */
export type KeyOverrides = { [Name in KeyFlagName]?: string };

/** One row of the table as the resolver, the docs and the command line read it. */
export interface Setting<T> {
  /** Dotted path in the JSON file. */
  key: ConfigKey;
  type: ValueType<T>;
  /** Absent: the key stays unset when the file leaves it out. */
  default?: Default<T>;
  check?: (value: T, config: BuildConfig, key: string) => T;
  doc: string;
  flag?: KeyFlag & { name: KeyFlagName };
}

/** The table seen key by key, so that a generic key K finds Setting<ValueAt<K>> in it. */
const ROWS: { [K in ConfigKey]: Omit<Setting<ValueAt<K>>, 'key'> } = TABLE;

/** Row K of the table, with its key. */
function settingOf<K extends ConfigKey>(key: K): Setting<ValueAt<K>> {
  return { key, ...ROWS[key] };
}

/** The table as rows, in its (resolution) order. */
export const SCHEMA = (Object.keys(ROWS) as ConfigKey[]).map((key) => settingOf(key));
