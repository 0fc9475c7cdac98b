/**
 * The C2's Ethernet switch in boot.ini (U-Boot hush): a `disable_ethernet` variable and a guarded
 * `fdt rm` of the MAC's device-tree node before the boot command, so "1" boots without the
 * Ethernet and "0" with it, and the user can flip it in boot.ini alone.
 */
import { insertBeforeBoot, setEnv, validateBootIni } from './hush.js';

export const ETHERNET_SWITCH = 'disable_ethernet';
const ethernetGuard = (node: string) => `if test "\${${ETHERNET_SWITCH}}" = "1"; then fdt rm ${node}; fi`;
export const GUARD_LINE = new RegExp(`^\\s*if test "\\$\\{${ETHERNET_SWITCH}\\}" = "1"; then fdt rm \\S+; fi\\s*$`, 'm');
const ethernetBlock = (node: string) => [
  '# Ethernet off (odroid-buildx-image power profile): "1" removes the MAC from the device tree',
  `setenv ${ETHERNET_SWITCH} "1"`,
  ethernetGuard(node),
  '',
];

const hasLine = (text: string, line: string) => text.split('\n').some((l) => l.trim() === line);

/** Switches the Ethernet off in boot.ini: the guarded `fdt rm` of `node` before the boot command, switch on. */
export function ethernetOff(bootIni: string, node: string): string {
  const withGuard = hasLine(bootIni, ethernetGuard(node)) ? bootIni : insertBeforeBoot(bootIni, ethernetBlock(node));
  const edited = setEnv(withGuard, ETHERNET_SWITCH, '1');
  validateBootIni(edited);
  return edited;
}
