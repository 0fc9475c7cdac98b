import { createHash } from 'node:crypto';
import { posix } from 'node:path';
import type { Board } from '../boards/board.js';
import { boardOf } from '../boards/recognize.js';
import type { BuildConfig, UsbProtocol } from '../config/schema.js';
import { type Operation, rootfsFile } from '../engine/operations.js';
import type { ImageView, Step } from '../engine/step.js';
import { renderTemplate } from '../engine/templates.js';
import { UserError } from '../errors.js';
import { kernelArgsOperations, requireBootConfig, settingEditsOperations } from '../facts/boot-config.js';
import { INTERFACES } from '../facts/ifupdown.js';
import { kernelModules } from '../facts/kernel-modules.js';
import {
  detectNetwork,
  type NetworkFacts,
  USB0_DEVICE_UNIT,
  USB0_FILES,
  USB0_SCRIPT,
  USB0_UNIT,
  USB0_UNIT_FILE,
} from '../facts/network.js';
import { enableUnitOperation, maskUnitsOperations, unitPath } from '../facts/systemd.js';

const MARKER = 'Written by odroid-buildx-image (usb-gadget step); a rebuild replaces it.';
const MODPROBE_CONF = '/etc/modprobe.d/usb-gadget.conf';
const MODULES_LOAD_CONF = '/etc/modules-load.d/usb-gadget.conf';

/** The module per protocol, and its use_eem (g_ether only; the stock 3.16 default is 1). */
const GADGETS: Record<UsbProtocol, { module: string; useEem: '0' | '1' | false }> = {
  ecm: { module: 'g_ether', useEem: '0' },
  eem: { module: 'g_ether', useEem: '1' },
  ncm: { module: 'g_ncm', useEem: false },
};

const RESOLVED_DROP_IN = '/etc/systemd/resolved.conf.d/usb0.conf';
/** Hands usb0 back to NetworkManager, which leaves gadget interfaces unmanaged by default. */
const NM_MANAGED_RULE = '/etc/udev/rules.d/86-usb0-networkmanager.rules';
const RESOLV_CONF = '/etc/resolv.conf';

const template = (path: string) => `usb-gadget${path}.mustache`;

/**
 * 128 bits from the name: the same at every rebuild (and every boot of the read-only root,
 * which would otherwise get a new transient id), different between differently named devices.
 */
export function machineIdFor(name: string): string {
  return createHash('sha256').update(`machine-id:${name}`).digest('hex').slice(0, 32);
}

const netmaskOf = (prefix: number) => [24, 16, 8, 0].map((shift) => ((0xffffffff << (32 - prefix)) >>> shift) & 0xff).join('.');

async function checkGadgetModule(image: ImageView, protocol: UsbProtocol): Promise<void> {
  const { module } = GADGETS[protocol];
  const kernels = await kernelModules(image);
  if (kernels.some((kernel) => kernel.modules.has(module))) return;
  const found =
    kernels.length === 0
      ? 'the image has no /lib/modules/<version>/modules.dep'
      : `kernel ${kernels.map((k) => k.version).join(', ')} has no ${module}`;
  throw new UserError(
    `usb.protocol "${protocol}" needs the ${module} kernel module but ${found}; pick a usb.protocol the kernel supports (ecm, eem: g_ether; ncm: g_ncm)`,
  );
}

const USB0_STANZA = USB0_FILES.ifupdown.path;

/** resolv.conf pointing into systemd-resolved's run directory: resolved answers every lookup. */
async function usesResolved(image: ImageView): Promise<boolean> {
  const target = await image.readlink('rootfs', RESOLV_CONF);
  if (target === undefined) return false;
  const resolved = posix.resolve('/etc', target).replace(/^\/var\/run\//, '/run/');
  return resolved.startsWith('/run/systemd/resolve/');
}

/**
 * What the mechanism needs besides usb0's file: ifupdown must read interfaces.d, networkd and the
 * usb0 unit must run, NetworkManager must manage a gadget interface.
 */
async function mechanismOperations(
  image: ImageView,
  network: NetworkFacts,
  render: (path: string) => Promise<string>,
): Promise<Operation[]> {
  switch (network.mechanism) {
    case 'ifupdown':
      return [
        {
          op: 'edit',
          on: 'rootfs',
          path: INTERFACES,
          change: { change: 'ifupdown-source-directory', from: INTERFACES, stanza: USB0_STANZA },
        },
      ];
    case 'networkd':
      return [enableUnitOperation('systemd-networkd.service', 'multi-user.target', (await unitPath(image, 'systemd-networkd.service'))!)];
    case 'networkmanager':
      return rootfsFile(NM_MANAGED_RULE, await render(NM_MANAGED_RULE));
    case 'usb0-unit':
      return [...rootfsFile(USB0_UNIT_FILE, await render(USB0_UNIT_FILE)), enableUnitOperation(USB0_UNIT, USB0_DEVICE_UNIT)];
    default:
      return [];
  }
}

/** The systemd units a Debian package installed, from dpkg's list of its files. */
async function packageUnits(image: ImageView, name: string): Promise<string[]> {
  const files = (await image.readText('rootfs', `/var/lib/dpkg/info/${name}.list`)) ?? '';
  return files
    .split('\n')
    .filter((path) => /^\/(usr\/)?lib\/systemd\/system\/[^/]+\.(service|socket|path|timer)$/.test(path.trim()))
    .map((path) => posix.basename(path.trim()));
}

/**
 * What the board's boot needs for the gadget (a Pi: the USB controller in device mode in
 * config.txt, the modules on the command line), and the units of stock packages that would set
 * up a gadget of their own on the same port (trixie's rpi-usb-gadget), masked.
 */
async function boardGadgetOperations(image: ImageView, board: Board, module: string): Promise<Operation[]> {
  const { settings, kernelArgs, conflictingPackages } = board.gadget;
  const args = kernelArgs(module);
  const boot = settings.length > 0 || args.length > 0 ? await requireBootConfig(image) : undefined;
  const units = [];
  for (const name of conflictingPackages) units.push(...(await packageUnits(image, name)));
  return [
    ...(boot ? settingEditsOperations(boot, settings) : []),
    ...(boot && args.length > 0 ? kernelArgsOperations(boot, { remove: [], set: args }) : []),
    ...(await maskUnitsOperations(image, units)),
  ];
}

function templateView(config: BuildConfig, dnsFile: string) {
  const { usb, network } = config;
  return {
    marker: MARKER,
    protocol: usb.protocol,
    ...GADGETS[usb.protocol],
    deviceMac: usb.deviceMac,
    hostMac: usb.hostMac,
    address: network.address,
    ip: network.ip,
    netmask: netmaskOf(network.prefix),
    gateway: network.gateway,
    dns: network.dns,
    dnsServers: network.dns.join(' '),
    dnsList: network.dns.map((server) => `${server};`).join(''),
    script: USB0_SCRIPT,
    dnsFile,
  };
}

/**
 * The device as a USB Ethernet adapter of the host: the gadget module with fixed MACs, usb0's
 * static address through whatever brings the network up at boot (facts/network.ts: the image's
 * own stack, else a fallback that needs nothing from it), the configured DNS, and a fixed
 * machine-id (read-only root).
 */
export const usbGadget: Step = {
  name: 'usb-gadget',
  summary: 'USB Ethernet gadget (usb0) with fixed MACs, static address and DNS; fixed machine-id',
  async plan({ config, image }) {
    const board = await boardOf(image, config);
    await checkGadgetModule(image, config.usb.protocol);
    const network = await detectNetwork(image);
    const dnsFile = (await usesResolved(image)) ? RESOLVED_DROP_IN : RESOLV_CONF;
    const view = templateView(config, dnsFile);
    const render = (path: string) => renderTemplate(template(path), view);
    const networkFile = USB0_FILES[network.mechanism];

    const operations: Operation[] = [
      ...rootfsFile(MODULES_LOAD_CONF, await render(MODULES_LOAD_CONF)),
      ...rootfsFile(MODPROBE_CONF, await render(MODPROBE_CONF)),
      ...rootfsFile(networkFile.path, await render(networkFile.path), networkFile.mode),
      ...(await mechanismOperations(image, network, render)),
      ...rootfsFile(dnsFile, await render(dnsFile)),
      // 0444 as systemd creates it: nothing on the device should rewrite it.
      ...rootfsFile('/etc/machine-id', `${machineIdFor(config.name)}\n`, 0o444),
      ...(await boardGadgetOperations(image, board, GADGETS[config.usb.protocol].module)),
    ];
    // D-Bus reads its own copy first; a link keeps the two from disagreeing.
    if ((await image.lstat('rootfs', '/var/lib/dbus'))?.type === 'dir') {
      operations.push({ op: 'symlink', on: 'rootfs', path: '/var/lib/dbus/machine-id', target: '/etc/machine-id', uid: 0, gid: 0 });
    }
    return operations;
  },
  async applied(image) {
    return (await image.readText('rootfs', MODPROBE_CONF))?.includes(MARKER) ?? false;
  },
};
