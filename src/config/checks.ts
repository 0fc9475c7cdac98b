/** The grammar of each narrow config value: a check returns the value or throws Invalid with the reason. */
import { createHash } from 'node:crypto';
import { UserError } from '../errors.js';
import { systemDirectoryOf } from './system-directories.js';

/** Thrown by checks; the resolver adds the key and the value to make it a UserError. */
export class Invalid extends Error {}

export function invalid(reason: string): never {
  throw new Invalid(reason);
}

export function checkName(value: string): string {
  // Not ending in a hyphen keeps every name a valid hostname, the default of `hostname`.
  if (!/^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$/.test(value)) {
    invalid('is not a valid name; use 1-63 lower-case letters, digits and hyphens, not starting or ending with a hyphen');
  }
  return value;
}

export function checkHostname(value: string): string {
  if (!/^[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?$/.test(value)) {
    invalid('is not a valid host name; use 1-63 letters, digits and hyphens, not starting or ending with a hyphen, no dots');
  }
  return value;
}

export function checkMac(value: string): string {
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

export function checkIpv4(value: string): string {
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

/** Ranges no host on the link can have: [first octet, prefix length, what the range is]. */
const UNUSABLE_RANGES: [number, number, string][] = [
  [0, 8, 'in 0.0.0.0/8, which means "this network" and is never a host address'],
  [127, 8, 'a loopback address (127.0.0.0/8), which never leaves the machine that uses it'],
  [224, 4, 'a multicast address (224.0.0.0/4)'],
  [240, 4, 'in the reserved 240.0.0.0/4 or the broadcast 255.255.255.255'],
];

/** Refuses an address no host can have; `advice` says what to use instead. */
function checkHostAddress(ip: string, advice: string): void {
  const first = Number(ip.split('.')[0]);
  for (const [start, prefix, what] of UNUSABLE_RANGES) {
    if (first >> (8 - prefix) === start >> (8 - prefix)) invalid(`is ${what}; ${advice}`);
  }
}

export function checkAddress(value: string): string {
  const match = /^([^/]+)\/(\d{1,2})$/.exec(value);
  if (!match || !IPV4.test(match[1])) invalid('is not IPv4 CIDR notation; write address/prefix like 10.0.0.2/24');
  const prefix = Number(match[2]);
  // The link needs at least the device and the gateway besides network and broadcast address (/30 at
  // most); the host kit routes the whole subnet onto the USB link, so anything wider than /8 (a /1
  // is half of IPv4) would take the laptop's other routes away.
  if (prefix < 8 || prefix > 30) invalid('has a prefix length outside 8-30; use e.g. /24');
  checkHostAddress(match[1], 'pick a private address like 10.0.0.2/24');
  const subnet = parseCidr(value);
  const ip = ipv4ToNumber(subnet.ip);
  if (ip === subnet.network || ip === subnet.broadcast) {
    invalid(`is the ${ip === subnet.network ? 'network' : 'broadcast'} address of its subnet; pick a host address like 10.0.0.2/24`);
  }
  return value;
}

/** The first host of the device's subnet (`network.address`) other than the device. */
export function defaultGateway(address: string): string {
  const subnet = parseCidr(address);
  const first = subnet.network + 1;
  return numberToIpv4(first === ipv4ToNumber(subnet.ip) ? first + 1 : first);
}

/** `address` is the device's network.address. */
export function checkGateway(value: string, address: string): string {
  checkIpv4(value);
  const subnet = parseCidr(address);
  const gateway = ipv4ToNumber(value);
  if (gateway < subnet.network || gateway > subnet.broadcast) {
    invalid(`is outside the subnet of network.address ${address}; use the host's address on the USB link`);
  }
  if (gateway === subnet.network || gateway === subnet.broadcast) {
    invalid(`is the ${gateway === subnet.network ? 'network' : 'broadcast'} address of ${address}; use the host's address on the USB link`);
  }
  if (value === subnet.ip) invalid("equals the device's own network.address; use the host's address on the USB link");
  return value;
}

/** The NFS server may be beyond the gateway, but never the device itself (`address`: its network.address) or its subnet's special addresses. */
export function checkNfsServer(value: string, address: string): string {
  checkIpv4(value);
  const advice = "use the NFS server's address, usually the host's on the USB link (network.gateway)";
  checkHostAddress(value, advice);
  const subnet = parseCidr(address);
  if (value === subnet.ip) invalid(`equals the device's own network.address; ${advice}`);
  const server = ipv4ToNumber(value);
  if (server === subnet.network || server === subnet.broadcast) {
    invalid(`is the ${server === subnet.network ? 'network' : 'broadcast'} address of ${address}; ${advice}`);
  }
  return value;
}

/**
 * The export lands in shell scripts, fstab-like mount arguments (`server:path`, options split at
 * commas), exports(5) and the host kit's commands: only characters none of them treat specially.
 */
export function checkExport(value: string): string {
  if (!value.startsWith('/')) invalid('is not an absolute path; write it like /srv/c2-builder');
  if (!/^(?:\/[A-Za-z0-9._+-]+)+$/.test(value)) {
    invalid(
      'is not a plain path; use /-separated names of letters, digits and . _ + - (no spaces, quotes or $), without a trailing or doubled /, like /srv/c2-builder',
    );
  }
  if (value.split('/').some((segment) => segment === '.' || segment === '..'))
    invalid('contains a . or .. segment; write the path without it');
  if (value.split('/').some((segment) => Buffer.byteLength(segment) > 255))
    invalid('has a name longer than 255 bytes, more than any file system takes; use shorter names');
  const system = systemDirectoryOf(value);
  if (system !== undefined) {
    invalid(
      `${system === value ? 'is' : `is inside`} the system directory ${system}, which the host would export read-write with no_root_squash to the device's root; use a directory of its own, like /srv/c2-builder`,
    );
  }
  return value;
}

export function checkBundle(value: string): string {
  // It is named in messages and in the image's install record: no line breaks or terminal controls.
  if (value.trim() === '' || /[\x00-\x1f\x7f]/.test(value)) invalid('is not a URL or a path; give the URL or path of docker-<version>.tgz');
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(value)) {
    if (!/^https?:\/\//i.test(value) || !URL.canParse(value)) invalid('is not an http(s) URL; give an https:// URL or a local path');
  }
  return value;
}

export function describeValue(value: unknown): string {
  const shown = JSON.stringify(value) ?? String(value);
  return shown.length > 60 ? `${shown.slice(0, 57)}...` : shown;
}

/** Runs a check, turning its complaint into a UserError that names the key and the value. */
export function explained<T>(label: string, value: T, check: (value: T) => T): T {
  try {
    return check(value);
  } catch (error) {
    if (error instanceof Invalid) throw new UserError(`${label} ${describeValue(value)} ${error.message}`);
    throw error;
  }
}

/** Checks one element of a list, naming the element (`network.dns[1]`) in the error. */
export function checkItem(key: string, value: string, check: (value: string) => string): string {
  return explained(`config key ${key}`, value, check);
}
