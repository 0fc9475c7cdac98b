/**
 * What the boot test adds to the image under test, and the build config it is patched with
 * (shared by device.boot.ts and storage-bench.ts): test/boot/guest/ plus the check service's
 * settings, written before the tool patches the image, never by the tool.
 */
import { cp, mkdir, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { shellWord } from '../../src/formats/escape.js';
import { API_CHAIN } from '../../src/steps/docker.js';
import { REPO } from '../support/cli.js';
import { writeTinyImage } from './tiny-image.js';

/** BOOT_CACHE (as for the scripts) can keep the rootfs and bundle outside a fresh checkout. */
export const CACHE = process.env.BOOT_CACHE ?? join(REPO, '.cache/boot');
export const LOGS = join(CACHE, 'logs');
export const NAME = 'boot-test';
/**
 * The build config. usb0 is on its own subnet with the default route through the host end of
 * the USB link, as on the board; the NFS server is QEMU's host address, which the guest reaches
 * through eth0's connected route (test/boot/guest/etc/network/interfaces.d/eth0), not usb0.
 */
export const CONFIG = {
  name: NAME,
  usb: { deviceMac: '02:b0:07:00:00:02', hostMac: '02:b0:07:00:00:01', protocol: 'ecm' },
  network: { address: '10.0.3.2/24', gateway: '10.0.3.1', dns: ['10.0.2.3'] },
  nfs: { server: '10.0.2.2', export: '/srv/boot-test' },
  // full: eth0 carries the NFS traffic under QEMU, and the image has no C2 device tree for the
  // USB profiles to take the Ethernet out of.
  power: { profile: 'full' },
};
/** The guest's side of QEMU's user network (test/boot/guest/etc/network/interfaces.d/eth0). */
export const GUEST_ETH0 = '10.0.2.15';
/** The port that ends the check service's host phase. */
export const SIGNAL_PORT = 12377;
/**
 * The test machine's docker client reaches the device through a second NIC of the guest, a tap
 * in the client's namespace on the test machine (client.ts). The check service hands the guest's
 * end to the host end of the USB link, the laptop, which routes the client's connections across
 * the link: `client` is the test machine's end, `laptop` the guest's.
 */
export const CLIENT_LINK = { mac: '02:b0:07:00:00:04', client: '10.0.4.2', laptop: '10.0.4.1', prefix: 24 };

/**
 * The guest tree for make-debian-image.sh: test/boot/guest/, the check service's settings from
 * CONFIG, the tiny image it loads, busybox's ping for the host kit's doctor.sh, and the buildx
 * plugin for the docker client at the host end of the link (setup-buildx.sh, then doctor.sh).
 */
export async function guestTree(work: string, busybox: string, buildx: string): Promise<string> {
  const tree = join(work, 'guest');
  await cp(join(REPO, 'test/boot/guest'), tree, { recursive: true, verbatimSymlinks: true });
  const settings = Object.entries({
    DEVICE_MAC: CONFIG.usb.deviceMac,
    HOST_MAC: CONFIG.usb.hostMac,
    USB_ADDRESS: CONFIG.network.address,
    NFS_SOURCE: `${CONFIG.nfs.server}:${CONFIG.nfs.export}`,
    HOST_NETNS: 'usbhost',
    HOST_ADDRESS: `${CONFIG.network.gateway}/24`,
    ETH0_ADDRESS: GUEST_ETH0,
    CLIENT_MAC: CLIENT_LINK.mac,
    CLIENT_LAPTOP_ADDRESS: `${CLIENT_LINK.laptop}/${CLIENT_LINK.prefix}`,
    SIGNAL_PORT,
    API_CHAIN,
  }).map(([name, value]) => `${name}=${shellWord(value)}`);
  await writeFile(
    join(tree, 'etc/boot-check.conf'),
    `# Written by test/boot/guest-tree.ts from its build config.\n${settings.join('\n')}\n`,
  );
  // The host end of the USB link (cdc_ether in the guest itself, see boot-check) and the client's
  // NIC are the laptop's interfaces, not the device's: NetworkManager's default DHCP profile on
  // one would hold its startup (and NetworkManager-wait-online) until DHCP gave up. ifupdown and
  // systemd-networkd configure only the interfaces they are told of (eth0, usb0).
  const unmanaged = [CONFIG.usb.hostMac, CLIENT_LINK.mac].map(
    (mac) => `SUBSYSTEM=="net", ACTION=="add|change|move", ATTR{address}=="${mac}", ENV{NM_UNMANAGED}="1"\n`,
  );
  await mkdir(join(tree, 'etc/udev/rules.d'), { recursive: true });
  await writeFile(
    join(tree, 'etc/udev/rules.d/90-boot-test-host-end.rules'),
    `# Written by test/boot/guest-tree.ts: the laptop's interfaces are not the device's.\n${unmanaged.join('')}`,
  );
  await mkdir(join(tree, 'usr/local/share/boot-check'), { recursive: true });
  await writeTinyImage(busybox, join(tree, 'usr/local/share/boot-check/tiny.tar'), 'boot-check/tiny:1');
  // ping for the host kit's doctor.sh at the host end of the USB link: the rootfs has no iputils.
  const bin = join(tree, 'usr/local/share/boot-check/bin');
  await mkdir(bin, { recursive: true });
  await cp(busybox, join(bin, 'busybox'));
  await symlink('busybox', join(bin, 'ping'));
  // Where Debian's docker client looks for its plugins (docker-buildx's own path).
  const plugins = join(tree, 'usr/libexec/docker/cli-plugins');
  await mkdir(plugins, { recursive: true });
  await cp(buildx, join(plugins, 'docker-buildx'));
  return tree;
}
