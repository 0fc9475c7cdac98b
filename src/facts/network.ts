/** Which software configures the image's network at boot. */
import type { ImageView } from '../engine/step.js';
import { findProgram } from './root-paths.js';
import { unitEnabled, unitPath } from './systemd.js';

export type NetworkStack = 'netplan' | 'ifupdown' | 'networkd';

/** The markers detectNetworkStack looks for, in its order, for messages and docs. */
export const NETWORK_STACK_MARKERS =
  'netplan: a /etc/netplan/*.yaml file; ifupdown: /etc/network/interfaces with /sbin/ifup or an iface other than lo; ' +
  'systemd-networkd: its unit file plus enabled or a /etc/systemd/network/*.network file';

/**
 * Which software configures the network at boot. netplan comes first: its YAML is rendered for
 * networkd (or NetworkManager) at every boot, whatever else is installed. ifupdown counts only
 * when it is installed or its file configures a real interface: images moved to netplan or
 * networkd often keep an /etc/network/interfaces that only mentions lo.
 */
export async function detectNetworkStack(image: ImageView): Promise<NetworkStack | undefined> {
  const netplanFiles = await image.readdir('rootfs', '/etc/netplan');
  if (netplanFiles.some((name) => /\.ya?ml$/.test(name))) return 'netplan';

  const interfaces = await image.readText('rootfs', '/etc/network/interfaces');
  if (interfaces !== undefined) {
    const hasIfup = await findProgram(image, 'ifup');
    const configuresInterface = /^\s*iface\s+(?!lo\s)\S+/m.test(interfaces);
    if (hasIfup || configuresInterface) return 'ifupdown';
  }

  if (await unitPath(image, 'systemd-networkd.service')) {
    const networkFiles = await image.readdir('rootfs', '/etc/systemd/network');
    if ((await unitEnabled(image, 'systemd-networkd.service')) || networkFiles.some((name) => name.endsWith('.network'))) return 'networkd';
  }
  return undefined;
}
