/**
 * A fleet (`--fleet N`, docs/fleet.md): N devices from one base config, built in one run. Board k
 * (1-based) is the base with every per-device value derived from the base and k alone, so a
 * rebuild gives every device the same values again:
 *
 *   name, hostname   `<base>-k`; the MACs follow from the name, as they do for any name
 *   network          the base's subnet moved k-1 subnets up: each device is its own USB link on
 *                    the host, so each needs a subnet of its own. Addresses inside the base's
 *                    subnet (the gateway, an NFS server or DNS server there) move with it.
 *   nfs.export       `<base export>-k`: a share, and so a data image, per device
 *
 * Everything else (protocol, power profile, DNS elsewhere, bundle, SSH keys) is the base's.
 */

import { isUserError, UserError } from '../errors.js';
import { derivedMacs, ipv4ToNumber, numberToIpv4, parseCidr } from './checks.js';
import { asConfigFile, resolveConfig } from './load.js';
import type { BuildConfig } from './schema.js';

/**
 * A base subnet inside one of these keeps the whole fleet inside it: counting subnets up from
 * 10.255.255.0/24 must not step into someone else's public addresses.
 */
const PRIVATE_BLOCKS = ['10.0.0.0/8', '172.16.0.0/12', '192.168.0.0/16', '100.64.0.0/10', '169.254.0.0/16'];

export function parseFleetSize(text: string): number {
  if (!/^[1-9][0-9]{0,5}$/.test(text))
    throw new UserError(`--fleet ${JSON.stringify(text)} is not a number of devices; give a whole number from 1 up, e.g. --fleet 3`);
  return Number(text);
}

interface Range {
  network: number;
  broadcast: number;
}

const contains = (range: Range, address: number) => address >= range.network && address <= range.broadcast;

function enclosingBlock(subnet: Range): Range & { text: string } {
  for (const text of PRIVATE_BLOCKS) {
    const block = parseCidr(text);
    if (contains(block, subnet.network) && contains(block, subnet.broadcast)) return { ...block, text };
  }
  return { network: 0, broadcast: 2 ** 32 - 1, text: 'the IPv4 address space' };
}

/** Board k's config, resolved and checked like any config; errors name the device. */
function deviceConfig(base: BuildConfig, k: number, move: (ip: string) => string): BuildConfig {
  const file = asConfigFile(base) as Record<string, Record<string, unknown>>;
  const name = `${base.name}-${k}`;
  try {
    return resolveConfig({
      ...file,
      name,
      hostname: `${base.hostname}-${k}`,
      // Unset: derived from the device's name.
      usb: { ...file.usb, deviceMac: undefined, hostMac: undefined },
      network: {
        ...file.network,
        address: `${move(base.network.ip)}/${base.network.prefix}`,
        gateway: move(base.network.gateway),
        dns: base.network.dns.map(move),
      },
      nfs: { ...file.nfs, server: move(base.nfs.server), export: `${base.nfs.export}-${k}` },
    });
  } catch (error) {
    if (isUserError(error)) throw new UserError(`--fleet: device ${k} (${name}), derived from the base config: ${error.message}`);
    throw error;
  }
}

/** The fleet's devices, device 1 first; refuses a base whose derivation would not give distinct, reachable devices. */
export function fleetConfigs(base: BuildConfig, size: number): BuildConfig[] {
  const own = derivedMacs(base.name);
  if (base.usb.deviceMac !== own.device || base.usb.hostMac !== own.host) {
    throw new UserError(
      '--fleet gives each device its own MAC pair, derived from its name; remove usb.deviceMac and usb.hostMac from the config',
    );
  }
  const subnet = parseCidr(base.network.address);
  const step = subnet.broadcast - subnet.network + 1;
  const subnetOf = (k: number): Range => ({ network: subnet.network + (k - 1) * step, broadcast: subnet.broadcast + (k - 1) * step });
  const cidrOf = (range: Range) => `${numberToIpv4(range.network)}/${base.network.prefix}`;

  const block = enclosingBlock(subnet);
  if (!contains(block, subnetOf(size).broadcast)) {
    const fit = Math.floor((block.broadcast - subnet.network + 1) / step);
    throw new UserError(
      `--fleet ${size} needs ${size} /${base.network.prefix} subnets from ${cidrOf(subnet)} up, one per device's USB link, but only ${fit} fit in ${block.text}; ` +
        `use a longer prefix in network.address (e.g. /24) or start lower in the block`,
    );
  }
  // Addresses outside the base's subnet are shared by every device: no device's link may hide one.
  const shared = [base.nfs.server, ...base.network.dns].filter((ip) => !contains(subnet, ipv4ToNumber(ip)));
  for (let k = 2; k <= size; k += 1) {
    const hidden = shared.find((ip) => contains(subnetOf(k), ipv4ToNumber(ip)));
    if (hidden) {
      throw new UserError(
        `--fleet ${size}: device ${k}'s USB link would be ${cidrOf(subnetOf(k))}, which holds ${hidden} (nfs.server or network.dns) that every device must reach; move network.address to another range`,
      );
    }
  }

  const devices = Array.from({ length: size }, (_, index) => {
    const offset = index * step;
    const move = (ip: string) => (contains(subnet, ipv4ToNumber(ip)) ? numberToIpv4(ipv4ToNumber(ip) + offset) : ip);
    return deviceConfig(base, index + 1, move);
  });
  // MACs come from a hash of each name: distinct in practice, and checked.
  const owners = new Map<string, string>();
  for (const device of devices) {
    for (const mac of [device.usb.deviceMac, device.usb.hostMac]) {
      const other = owners.get(mac);
      if (other) throw new UserError(`--fleet: devices ${other} and ${device.name} would share the MAC ${mac}; pick another name`);
      owners.set(mac, device.name);
    }
  }
  return devices;
}
