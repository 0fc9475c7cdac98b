/** Which software brings usb0 up at boot, the file that shows it, and where usb0's settings live for each. */
import type { ImageView } from '../engine/step.js';
import { configuredInterfaces, INTERFACES, ifupdownFiles } from './ifupdown.js';
import { findProgram } from './root-paths.js';
import { enablementLink, unitPath } from './systemd.js';

/**
 * What configures usb0: the image's own stack, or `usb0-unit`, this tool's small unit that sets the
 * address with `ip` when usb0 appears, for an image where nothing else would.
 */
export type Usb0Mechanism = 'netplan' | 'ifupdown' | 'networkmanager' | 'networkd' | 'usb0-unit';

export interface NetworkFacts {
  mechanism: Usb0Mechanism;
  /** The file that shows the mechanism runs at boot (a config file or an enablement link). */
  evidence: string;
  /** Why the mechanism is a fallback (nothing in the image configures the network, or its stack cannot run). */
  fallback?: string;
}

/** The unit the usb0-unit mechanism installs, and the script it runs. */
export const USB0_UNIT = 'usb0-address.service';
export const USB0_UNIT_FILE = `/etc/systemd/system/${USB0_UNIT}`;
export const USB0_SCRIPT = '/usr/local/sbin/usb0-address';
/** systemd's device unit for usb0: the usb0 unit is bound to it and wanted by it. */
export const USB0_DEVICE_UNIT = 'sys-subsystem-net-devices-usb0.device';

/** The file that holds usb0's address for each mechanism, and its mode. */
export const USB0_FILES: Record<Usb0Mechanism, { path: string; mode: number }> = {
  ifupdown: { path: '/etc/network/interfaces.d/usb0', mode: 0o644 },
  // netplan warns about group- or world-readable files (they may hold Wi-Fi secrets).
  netplan: { path: '/etc/netplan/60-usb0.yaml', mode: 0o600 },
  // NetworkManager ignores a keyfile that anyone but root can read.
  networkmanager: { path: '/etc/NetworkManager/system-connections/usb0.nmconnection', mode: 0o600 },
  networkd: { path: '/etc/systemd/network/60-usb0.network', mode: 0o644 },
  'usb0-unit': { path: USB0_SCRIPT, mode: 0o755 },
};

/**
 * ifupdown configures the network when its files have an `iface` for a real interface or
 * networking.service is enabled. It is not there to run when networking.service exists but
 * ifup does not (the package's files half removed): then the boot applies nothing from it.
 * An image with stanzas but neither (a trimmed image) is taken at its files' word.
 */
async function ifupdownState(image: ImageView): Promise<{ evidence: string; runs: boolean } | undefined> {
  const files = await ifupdownFiles(image);
  const stanzaFile = files.find((file) => configuredInterfaces([file]).length > 0)?.path;
  const enabled = await enablementLink(image, 'networking.service');
  const evidence = stanzaFile ?? enabled;
  if (!evidence) return undefined;
  const binary = await findProgram(image, 'ifup');
  const unit = enabled ?? (await unitPath(image, 'networking.service'));
  return { evidence, runs: binary !== undefined || unit === undefined };
}

/** networkd runs usb0's .network when its unit is there and it is enabled or configured. */
async function networkdEvidence(image: ImageView): Promise<string | undefined> {
  if (!(await unitPath(image, 'systemd-networkd.service'))) return undefined;
  const enabled = await enablementLink(image, 'systemd-networkd.service');
  if (enabled) return enabled;
  const network = (await image.readdir('rootfs', '/etc/systemd/network')).filter((name) => name.endsWith('.network')).sort()[0];
  return network && `/etc/systemd/network/${network}`;
}

/**
 * What brings usb0 up at boot. netplan comes first: its YAML is rendered for networkd or
 * NetworkManager at every boot, whatever else is installed. Then ifupdown, NetworkManager and
 * networkd, each only when it runs at boot. With none of them, the fallback needs nothing from
 * the image's network stack: networkd where its unit exists (it is part of systemd), else this
 * tool's usb0 unit. Once a build has applied a fallback, the image shows it as that mechanism.
 */
export async function detectNetwork(image: ImageView): Promise<NetworkFacts> {
  const netplan = (await image.readdir('rootfs', '/etc/netplan')).filter((name) => /\.ya?ml$/.test(name)).sort()[0];
  if (netplan) return { mechanism: 'netplan', evidence: `/etc/netplan/${netplan}` };

  const ifupdown = await ifupdownState(image);
  if (ifupdown?.runs) return { mechanism: 'ifupdown', evidence: ifupdown.evidence };

  const networkManager = await enablementLink(image, 'NetworkManager.service');
  if (networkManager) return { mechanism: 'networkmanager', evidence: networkManager };

  const networkd = await networkdEvidence(image);
  if (networkd) return { mechanism: 'networkd', evidence: networkd };

  const usb0Unit = await enablementLink(image, USB0_UNIT);
  if (usb0Unit) return { mechanism: 'usb0-unit', evidence: usb0Unit };

  const fallback = ifupdown
    ? `ifupdown is configured (${ifupdown.evidence}) but its ifup is not in the image`
    : `nothing configures the network (no ${INTERFACES} stanza, netplan, NetworkManager or systemd-networkd)`;
  const networkdUnit = await unitPath(image, 'systemd-networkd.service');
  if (networkdUnit) return { mechanism: 'networkd', evidence: networkdUnit, fallback };
  return { mechanism: 'usb0-unit', evidence: USB0_UNIT_FILE, fallback };
}
