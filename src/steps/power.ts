import type { Board, PowerSettings } from '../boards/board.js';
import { boardOf, recognizeBoard } from '../boards/recognize.js';
import type { BuildConfig, PowerProfile } from '../config/schema.js';
import type { Operation } from '../engine/operations.js';
import type { ImageView, Step } from '../engine/step.js';
import { UserError } from '../errors.js';
import {
  type BootConfig,
  kernelArgs,
  kernelArgsOperations,
  persistentValue,
  readBootConfig,
  requireBootConfig,
  settingEditsOperations,
  settingsHold,
} from '../facts/boot-config.js';
import { ifupdownFiles } from '../facts/ifupdown.js';
import { ETHERNET_SWITCH, GUARD_LINE } from '../formats/ethernet-switch.js';
import { deviceTree, findNode } from '../formats/fdt.js';
import { expandBootArgs, getEnv, setEnv } from '../formats/hush.js';
import { getIniKey } from '../formats/ini.js';
import { applyTextChange, type TextChange } from '../formats/text-changes.js';

/**
 * The summary's warning for `full`, the default: it is HardKernel's adapter's profile, and the
 * board the README starts with runs from a laptop's USB port, where four busy cores can reset it
 * (docs/power.md says why `full` stays the default).
 */
export function powerWarning(config: BuildConfig, board: Board): string | undefined {
  // A board without USB profiles runs from its DC supply only: the summary's board line says so.
  if (config.power.profile !== 'full' || board.power.profiles['usb2-0.5A'] === undefined) return undefined;
  return `power.profile "full" (the default: every core at full speed) is for the board's own adapter; ${board.name} powered from a laptop's USB port (0.5 A) can reset under a build: set power.profile "usb2-0.5A" (or "usb3-0.9A") in the config (docs/power.md)`;
}

/**
 * The C2's Ethernet MAC, by what it is rather than where: HardKernel's 3.16 tree has it at
 * `/ethernet@0xc9410000` (meson64_odroidc2.dts, `ethmac:`), mainline at `/soc/ethernet@c9410000`
 * with the `ethernet0` alias. The stmmac/dwmac-meson driver is built into the stock kernel
 * (CONFIG_STMMAC_ETH=y, CONFIG_DWMAC_MESON=y), so a modprobe blacklist would do nothing; without
 * the node the driver never probes and eth0 never exists.
 */
const ETHERNET_COMPATIBLES = ['amlogic, gxbb-rmii-dwmac', 'amlogic, gxbb-rgmii-dwmac', 'amlogic,meson-gxbb-dwmac'] as const;
const ETHERNET_ALIAS = 'ethernet0';
const NETPLAN_DIR = '/etc/netplan';
const NM_CONNECTIONS = '/etc/NetworkManager/system-connections';
const ETHERNET_INTERFACE = 'eth0';

/** Name and value of each `set` edit of a profile. */
const setValues = (settings: PowerSettings): [string, string][] =>
  settings.settings.flatMap((edit) => (edit.kind === 'set' ? [[edit.name, edit.value] as [string, string]] : []));

/** boot.ini's settings work through `maxcpus=${maxcpus} max_freq=${max_freq}` in bootargs; refuses a boot.ini without them. */
function checkReachesKernel(bootIni: string, profile: PowerProfile, settings: PowerSettings): void {
  const wanted = setValues(settings);
  const edited = wanted.reduce((text, [name, value]) => setEnv(text, name, value), bootIni);
  const args = expandBootArgs(edited).split(' ');
  for (const [name, value] of wanted) {
    if (!args.includes(`${name}=${value}`)) {
      throw new UserError(
        `power.profile "${profile}" needs boot.ini's bootargs to pass ${name}=\${${name}} to the kernel, and this one does not; use HardKernel's C2 boot.ini or power.profile "full"`,
      );
    }
  }
}

/**
 * The Ethernet MAC's path in the device tree boot.ini loads. Refuses the Ethernet edit without
 * one: a missing node would make `fdt rm` fail quietly at boot and leave the Ethernet on.
 */
async function ethernetNode(image: ImageView, bootIni: string): Promise<string> {
  const load = /^[ \t]*(?:fatload|load)[ \t]+\S+[ \t]+\S+[ \t]+\$\{dtb_loadaddr\}[ \t]+(\S+)/m.exec(bootIni);
  if (!load)
    throw new UserError(
      'boot.ini loads no device tree to ${dtb_loadaddr}, so the Ethernet cannot be removed from it; use power.profile "full"',
    );
  const name = load[1].replace(/^\/+/, '');
  const blob = await image.read('boot', `/${name}`);
  if (!blob) throw new UserError(`boot.ini loads the device tree ${name} but the boot partition has no such file`);
  const node = findNode(deviceTree(blob, name), ETHERNET_COMPATIBLES, ETHERNET_ALIAS);
  if (!node) {
    throw new UserError(
      `${name} has no Ethernet MAC node (compatible ${ETHERNET_COMPATIBLES.map((c) => `"${c}"`).join(' or ')}, or the ${ETHERNET_ALIAS} alias), so boot.ini cannot switch the Ethernet off; use power.profile "full"`,
    );
  }
  return node;
}

async function ethernetOperations(image: ImageView, bootIni: string, settings: PowerSettings): Promise<Operation[]> {
  const text = (await image.readText('boot', bootIni)) ?? '';
  if (settings.ethernet) {
    // Only an image an earlier build switched off has the switch; a stock one needs nothing.
    if (getEnv(text, ETHERNET_SWITCH) === undefined) return [];
    const switchOn: TextChange = {
      change: 'boot-settings',
      format: 'c2-boot.ini',
      edits: [{ kind: 'set', name: ETHERNET_SWITCH, value: '0' }],
    };
    return [{ op: 'edit', on: 'boot', path: bootIni, change: switchOn }, ...(await ethernetOptionalOperations(image, true))];
  }
  const change: TextChange = { change: 'ethernet-off', node: await ethernetNode(image, text) };
  applyTextChange(text, change); // fails here, before anything is written, if boot.ini cannot take it
  return [{ op: 'edit', on: 'boot', path: bootIni, change }, ...(await ethernetOptionalOperations(image, false))];
}

/**
 * eth0 never holds the boot, whatever configures it: in every file ifupdown reads, `auto eth0`
 * becomes `allow-hotplug eth0`; a netplan eth0 gets `optional: true`; a NetworkManager profile
 * for eth0 is not started at boot (with `ethernet` true, only one this step switched off is
 * switched back on).
 */
async function ethernetOptionalOperations(image: ImageView, ethernet: boolean): Promise<Operation[]> {
  const operations: Operation[] = [];
  const editIfChanged = (path: string, text: string, change: TextChange) => {
    if (applyTextChange(text, change) !== text) operations.push({ op: 'edit', on: 'rootfs', path, change });
  };
  if (!ethernet) {
    for (const { path, text } of await ifupdownFiles(image)) {
      editIfChanged(path, text, { change: 'ifupdown-hotplug', iface: ETHERNET_INTERFACE });
    }
    for (const name of (await image.readdir('rootfs', NETPLAN_DIR)).filter((n) => /\.ya?ml$/.test(n)).sort()) {
      const path = `${NETPLAN_DIR}/${name}`;
      editIfChanged(path, (await image.readText('rootfs', path)) ?? '', { change: 'netplan-optional', iface: ETHERNET_INTERFACE });
    }
  }
  for (const name of (await image.readdir('rootfs', NM_CONNECTIONS)).sort()) {
    const path = `${NM_CONNECTIONS}/${name}`;
    const text = (await image.readText('rootfs', path)) ?? '';
    if (getIniKey(text, 'connection', 'interface-name') !== ETHERNET_INTERFACE) continue;
    editIfChanged(path, text, { change: 'nm-autoconnect', on: ethernet, iface: ETHERNET_INTERFACE });
  }
  return operations;
}

/** Whether boot.ini's Ethernet switch, where the format has one, is as the profile wants it. */
function ethernetMatches(boot: BootConfig, settings: PowerSettings): boolean {
  if (boot.kind !== 'c2-boot.ini') return settings.ethernet;
  const ethernetOn = !(getEnv(boot.text, ETHERNET_SWITCH) === '1' && GUARD_LINE.test(boot.text));
  return settings.ethernet === ethernetOn;
}

/** Whether the image shows the profile: its settings, kernel arguments and Ethernet switch. */
function showsProfile(boot: BootConfig, settings: PowerSettings): boolean {
  const args = kernelArgs(boot);
  const argsHold =
    settings.kernelArgs === undefined ||
    (settings.kernelArgs.set.every((arg) => args.includes(arg)) &&
      !args.some((arg) => settings.kernelArgs!.remove.includes(arg.split('=', 1)[0])));
  return settingsHold(boot, settings.settings) && argsHold && ethernetMatches(boot, settings);
}

/**
 * Keeps the board within what its supply can deliver, as its entry in the board table says: on
 * the C2 CPU cores and top frequency from HardKernel's own list in boot.ini, and for the USB
 * profiles no Ethernet (docs/power.md); on a Pi cores and clock (docs/boards.md); a board whose
 * entry has no USB profile refuses one.
 */
export const power: Step = {
  name: 'power',
  summary: 'power profile: CPU cores and frequency in the boot configuration; Ethernet off for USB power on the C2',
  async plan({ config, image, warn }) {
    const { profile } = config.power;
    const board = await boardOf(image, config);
    const warning = powerWarning(config, board);
    if (warning) warn(warning);
    const boot = await requireBootConfig(image);
    const settings = board.power.profiles[profile];
    if (!settings) {
      throw new UserError(
        `power.profile "${profile}" sets the ODROID-C2's boot.ini but this image has ${boot.settings.slice(1)} (${board.name}: ${board.power.note}); use power.profile "full"`,
      );
    }
    // boot.ini's settings reach the kernel only through its bootargs.
    if (boot.kind === 'c2-boot.ini') checkReachesKernel(boot.text, profile, settings);
    return [
      ...settingEditsOperations(boot, settings.settings),
      ...(settings.kernelArgs ? kernelArgsOperations(boot, settings.kernelArgs) : []),
      ...(boot.kind === 'c2-boot.ini' ? await ethernetOperations(image, boot.settings, settings) : []),
    ];
  },
  async applied(image) {
    const boot = await readBootConfig(image);
    if (!boot) return false;
    const board = await recognizeBoard(image);
    const profile = Object.values(board.power.profiles).find((settings) => showsProfile(boot, settings));
    if (!profile) return false;
    // A stock C2 matches `full` by its CPU lines alone; the step also makes them persistent.
    if (boot.kind !== 'c2-boot.ini' || boot.persistentText === undefined) return true;
    return setValues(profile).every(([name, value]) => persistentValue(boot, name) === value);
  },
};
