/**
 * Every change a build makes to a text file already in the image, as named data: a plan holds
 * these (not closures), so it can be printed, compared and diffed, and the applier hands each to
 * the format that knows how to make it. A new kind needs a case in both switches below; tsc and
 * test/operations.test.ts refuse one that is missing.
 */
import { applyKernelArgsEdit, applySettingEdit, describeKernelArgsEdit, describeSettingEdit, type SettingEdit } from './boot-edits.js';
import type { BootConfigKind } from './boot-files.js';
import type { KernelArgsEdit } from './cmdline.js';
import { ETHERNET_SWITCH, ethernetOff } from './ethernet-switch.js';
import { protectFstab } from './fstab.js';
import { setHostsSelfName } from './hosts.js';
import { isC2BootIni, validateBootIni } from './hush.js';
import { hotplugOnly, sourceDirectoryFor } from './ifupdown.js';
import { setPersistentOverride } from './ini.js';
import { netplanOptional } from './netplan.js';
import { nmAutoconnect } from './nm-keyfile.js';
import { LOCKED_ACCOUNT, lockPasswords, NO_PASSWORD } from './shadow.js';
import { setSshdBlock } from './sshd-config.js';

export type TextChange =
  /** The boot configuration's settings (boot.ini's setenv, config.ini's [generic], config.txt's [all]). */
  | { change: 'boot-settings'; format: BootConfigKind; edits: SettingEdit[] }
  /** The kernel command line: boot.ini's bootargs, or cmdline.txt's one line. */
  | { change: 'kernel-args'; format: BootConfigKind; edit: KernelArgsEdit }
  /** A C2's boot.ini.default: values the bootini package re-applies when it replaces boot.ini. */
  | { change: 'persistent-overrides'; values: Record<string, string> }
  /** A C2's boot.ini: the guarded `fdt rm` of the Ethernet MAC's node, switched on. */
  | { change: 'ethernet-off'; node: string }
  /** ifupdown: `iface` brought up by hotplug, not at boot. */
  | { change: 'ifupdown-hotplug'; iface: string }
  /** ifupdown's main file (at `from`) reads the directory `stanza` is in. */
  | { change: 'ifupdown-source-directory'; from: string; stanza: string }
  /** netplan: `iface` optional, so wait-online does not wait for it. */
  | { change: 'netplan-optional'; iface: string }
  /** A NetworkManager keyfile: autoconnect off (marked as ours), or back on when we switched it off. */
  | { change: 'nm-autoconnect'; on: boolean; iface: string }
  /** /etc/hosts: the 127.0.1.1 line names only `hostname`. */
  | { change: 'hosts-self-name'; hostname: string }
  /** /etc/fstab: the FAT read-only and unchecked, swap off. */
  | { change: 'fstab-protect' }
  /** /etc/shadow: root without a password, every other account locked (`hadPassword`: for the plan's reader). */
  | { change: 'shadow-lock'; hadPassword: string[] }
  /** sshd_config: `block` first, the file's own settings of its keywords commented out. */
  | { change: 'sshd-block'; block: string }
  /** Any text file: `line` added at the end (on a line of its own). */
  | { change: 'append-line'; line: string };

/** `text` with the change made; throws where the file cannot take it (before anything is written: plans call it too). */
export function applyTextChange(text: string, change: TextChange): string {
  switch (change.change) {
    case 'boot-settings': {
      const edited = change.edits.reduce((current, edit) => applySettingEdit(change.format, current, edit), text);
      if (change.format === 'c2-boot.ini') validateBootIni(edited);
      return edited;
    }
    case 'kernel-args': {
      const edited = applyKernelArgsEdit(change.format, text, change.edit);
      // U-Boot's limits hold for a C2's boot.ini; a C4's boot.ini is read by a newer U-Boot.
      if (change.format !== 'config.txt' && isC2BootIni(text)) validateBootIni(edited);
      return edited;
    }
    case 'persistent-overrides':
      return Object.entries(change.values).reduce((current, [name, value]) => setPersistentOverride(current, name, value), text);
    case 'ethernet-off':
      return ethernetOff(text, change.node);
    case 'ifupdown-hotplug':
      return hotplugOnly(text, change.iface);
    case 'ifupdown-source-directory':
      return sourceDirectoryFor(text, change.from, change.stanza);
    case 'netplan-optional':
      return netplanOptional(text, change.iface);
    case 'nm-autoconnect':
      return nmAutoconnect(text, change.on);
    case 'hosts-self-name':
      return setHostsSelfName(text, change.hostname);
    case 'fstab-protect':
      return protectFstab(text);
    case 'shadow-lock':
      return lockPasswords(text);
    case 'sshd-block':
      return setSshdBlock(text, change.block);
    case 'append-line':
      return `${text}${text === '' || text.endsWith('\n') ? '' : '\n'}${change.line}\n`;
    default:
      return unknownChange(change);
  }
}

/** One line for the plan, from the change alone. */
export function describeTextChange(change: TextChange): string {
  switch (change.change) {
    case 'boot-settings': {
      const described = change.edits.map((edit) => describeSettingEdit(change.format, edit)).join(', ');
      // config.ini's settings are all in [generic]: said once, at the end.
      return change.format === 'config.ini' ? described.replace(/ in \[generic\](?=,)/g, '') : described;
    }
    case 'kernel-args':
      return `${change.format === 'config.txt' ? 'cmdline' : 'bootargs'}: ${describeKernelArgsEdit(change.edit)}`;
    case 'persistent-overrides':
      return `${Object.keys(change.values).join(', ')} kept across bootini package upgrades`;
    case 'ethernet-off':
      return `fdt rm ${change.node} when ${ETHERNET_SWITCH} is "1", and set it`;
    case 'ifupdown-hotplug':
      return `allow-hotplug ${change.iface} instead of auto: boot does not wait for a cable`;
    case 'ifupdown-source-directory':
      return `source-directory for ${change.stanza}`;
    case 'netplan-optional':
      return `${change.iface} optional: boot does not wait for it`;
    case 'nm-autoconnect':
      return `autoconnect=${change.on}: NetworkManager-wait-online ${change.on ? 'waits for' : 'does not wait for'} ${change.iface}`;
    case 'hosts-self-name':
      return `127.0.1.1 ${change.hostname}`;
    case 'fstab-protect':
      return 'FAT read-only and unchecked, swap off';
    case 'shadow-lock':
      return `root's password removed (${NO_PASSWORD}), every other account locked (${LOCKED_ACCOUNT}); had one: ${change.hadPassword.join(', ') || 'none'}`;
    case 'sshd-block':
      return `a block first (${change.block.split('\n').filter((line) => line !== '' && !line.startsWith('#')).length} settings), the file's own settings of its keywords commented out`;
    case 'append-line':
      return `+ ${change.line}`;
    default:
      return unknownChange(change);
  }
}

/** For a switch's `default`: tsc fails where a kind has no case, and an unknown kind stops the build. */
function unknownChange(change: never): never {
  throw new Error(`unknown text change: ${(change as { change?: unknown }).change}`);
}
