/** Helpers several steps share: the kernel command line, systemd units, kernel modules and the network stack. */
import { posix } from 'node:path';
import { C2_BOOT_INI_HEADER, getEnv, setEnv, setPersistentOverride, validateBootIni } from '../bootconfig.js';
import { UserError } from '../errors.js';
import type { Operation } from '../operations.js';
import type { ImageView } from './step.js';

/** FAT ignores case: the path of a file in the boot partition's root as it is spelled there. */
export async function bootFile(image: ImageView, name: string): Promise<string | undefined> {
  const found = (await image.readdir('boot', '/')).find((file) => file.toLowerCase() === name);
  return found === undefined ? undefined : `/${found}`;
}

/**
 * Operations that change the kernel command line: `edit` rewrites boot.ini (e.g. with addBootArg).
 * On a C2 the result is checked against U-Boot's limits, and boot.ini.default, when present, gets
 * the whole new bootargs value as its persistent override: the bootini package replaces boot.ini
 * on upgrades and then re-applies only what boot.ini.default sets, so an argument added to
 * boot.ini alone would silently disappear. Fails before anything is written.
 */
export async function kernelArgsOperations(image: ImageView, what: string, edit: (bootIni: string) => string): Promise<Operation[]> {
  const bootIni = await bootFile(image, 'boot.ini');
  if (!bootIni) {
    const found = (await image.readdir('boot', '/')).join(', ') || 'nothing';
    throw new UserError(`the boot partition has no boot.ini to carry the kernel arguments (found: ${found}); use a HardKernel ODROID image`);
  }
  const isC2 = (text: string) => text.split('\n', 1)[0].replace(/\r$/, '') === C2_BOOT_INI_HEADER;
  const checkedEdit = (text: string) => {
    const edited = edit(text);
    if (isC2(text)) validateBootIni(edited);
    return edited;
  };
  const current = (await image.readText('boot', bootIni)) ?? '';
  const bootargs = getEnv(checkedEdit(current), 'bootargs');
  const operations: Operation[] = [{ op: 'edit', on: 'boot', path: bootIni, what, edit: checkedEdit }];
  const persistent = await bootFile(image, 'boot.ini.default');
  if (isC2(current) && persistent && bootargs !== undefined) {
    operations.push({
      op: 'edit',
      on: 'boot',
      path: persistent,
      what: 'bootargs kept across bootini package upgrades',
      edit: (text) => setPersistentOverride(text, 'bootargs', bootargs),
    });
  }
  return operations;
}

/**
 * Operations that make each `setenv name "value"` active in a C2 boot.ini, and the same override
 * active in boot.ini.default when the image has it (the bootini package rewrites boot.ini on
 * upgrades and re-applies only what that file sets). The edited boot.ini is checked against
 * U-Boot's limits now, so a file that cannot take the edit fails before anything is written.
 */
export async function bootIniSettingsOperations(image: ImageView, bootIni: string, settings: Record<string, string>): Promise<Operation[]> {
  const entries = Object.entries(settings);
  const edit = (text: string) => {
    const edited = entries.reduce((current, [name, value]) => setEnv(current, name, value), text);
    validateBootIni(edited);
    return edited;
  };
  edit((await image.readText('boot', bootIni)) ?? '');
  const operations: Operation[] = [
    { op: 'edit', on: 'boot', path: bootIni, what: entries.map(([name, value]) => `setenv ${name} "${value}"`).join(', '), edit },
  ];
  const persistent = await bootFile(image, 'boot.ini.default');
  if (persistent) {
    operations.push({
      op: 'edit',
      on: 'boot',
      path: persistent,
      what: `${entries.map(([name, value]) => `${name}=${value}`).join(', ')} kept across bootini package upgrades`,
      edit: (text) => entries.reduce((current, [name, value]) => setPersistentOverride(current, name, value), text),
    });
  }
  return operations;
}

const UNIT_DIR = '/etc/systemd/system';

/**
 * What `systemctl mask` does, offline: each unit links to /dev/null in /etc/systemd/system, and
 * its enablement links (`<target>.wants/<unit>`, `.requires/`) go, so nothing lists it any more.
 */
export async function maskUnitsOperations(image: ImageView, units: readonly string[]): Promise<Operation[]> {
  const operations: Operation[] = [];
  const dependencyDirs = (await image.readdir('rootfs', UNIT_DIR)).filter((name) => /\.(wants|requires)$/.test(name));
  for (const unit of units) {
    for (const dir of dependencyDirs) {
      const link = `${UNIT_DIR}/${dir}/${unit}`;
      if (await image.lstat('rootfs', link)) operations.push({ op: 'remove', on: 'rootfs', path: link });
    }
    operations.push({ op: 'symlink', on: 'rootfs', path: `${UNIT_DIR}/${unit}`, target: '/dev/null', uid: 0, gid: 0 });
  }
  return operations;
}

/** A root-owned file in the rootfs, its directory created 0755 root:root if missing. */
export function rootfsFile(path: string, content: string | Buffer, mode = 0o644): Operation[] {
  return [
    { op: 'mkdir', on: 'rootfs', path: posix.dirname(path), mode: 0o755, uid: 0, gid: 0 },
    { op: 'write', on: 'rootfs', path, content, mode, uid: 0, gid: 0 },
  ];
}

// --- kernel modules ---------------------------------------------------------------------------

export interface KernelModules {
  /** The directory name under /lib/modules, e.g. 3.16.85-65. */
  version: string;
  /** Loadable (modules.dep) and built in (modules.builtin), as modprobe names them. */
  modules: Set<string>;
}

// /lib is a symlink to usr/lib on merged-/usr images, and the view does not follow symlinks.
const MODULE_ROOTS = ['/lib/modules', '/usr/lib/modules'];

/** modprobe's name for a module file: no directory, no .ko(.xz), and `-` the same as `_`. */
const moduleName = (path: string) => posix.basename(path).replace(/\.ko(\.[a-z0-9]+)?$/, '').replaceAll('-', '_');

/**
 * The modules each installed kernel provides, from depmod's lists rather than a walk of the
 * tree (thousands of files on a real image). A kernel without modules.dep lists nothing.
 */
export async function kernelModules(image: ImageView): Promise<KernelModules[]> {
  for (const root of MODULE_ROOTS) {
    const versions = (await image.readdir('rootfs', root)).sort();
    if (versions.length === 0) continue;
    const kernels: KernelModules[] = [];
    for (const version of versions) {
      const modules = new Set<string>();
      for (const list of ['modules.dep', 'modules.builtin']) {
        const text = (await image.readText('rootfs', `${root}/${version}/${list}`)) ?? '';
        for (const line of text.split('\n')) {
          const path = line.split(':', 1)[0].trim();
          if (path) modules.add(moduleName(path));
        }
      }
      kernels.push({ version, modules });
    }
    return kernels;
  }
  return [];
}

// --- systemd unit lookups ---------------------------------------------------------------------

const PACKAGE_UNIT_DIRS = ['/lib/systemd/system', '/usr/lib/systemd/system'];

/** Where the image's package-provided unit file is, if it has one. */
export async function unitPath(image: ImageView, unit: string): Promise<string | undefined> {
  for (const dir of PACKAGE_UNIT_DIRS) {
    if ((await image.lstat('rootfs', `${dir}/${unit}`))?.type === 'file') return `${dir}/${unit}`;
  }
  return undefined;
}

/** Whether `systemctl enable` has linked the unit into some target's .wants/ in /etc. */
export async function unitEnabled(image: ImageView, unit: string): Promise<boolean> {
  for (const entry of await image.readdir('rootfs', '/etc/systemd/system')) {
    if (!entry.endsWith('.wants')) continue;
    if (await image.lstat('rootfs', `/etc/systemd/system/${entry}/${unit}`)) return true;
  }
  return false;
}

/**
 * The name of the unit systemd gives a mount of `path`, as `systemd-escape --path --suffix=mount`
 * spells it: slashes become dashes, and anything but ASCII letters, digits, `:`, `_` and a
 * non-leading `.` becomes `\xNN` (so `-` in a directory name is `\x2d`).
 */
export function mountUnitName(path: string): string {
  const trimmed = path.replace(/\/+/g, '/').replace(/^\/|\/$/g, '');
  if (trimmed === '') return '-.mount';
  const escaped = [...Buffer.from(trimmed, 'utf8')]
    .map((byte, index) => {
      const char = String.fromCharCode(byte);
      if (char === '/') return '-';
      if (/[A-Za-z0-9:_]/.test(char) || (char === '.' && index > 0)) return char;
      return `\\x${byte.toString(16).padStart(2, '0')}`;
    })
    .join('');
  return `${escaped}.mount`;
}

/** What `systemctl enable` does, offline, for a unit of /etc/systemd/system with `WantedBy=<target>`. */
export function enableUnitOperation(unit: string, target = 'multi-user.target'): Operation {
  return { op: 'symlink', on: 'rootfs', path: `${UNIT_DIR}/${target}.wants/${unit}`, target: `${UNIT_DIR}/${unit}`, uid: 0, gid: 0 };
}

// --- network stack ----------------------------------------------------------------------------

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
    const hasIfup = (await image.lstat('rootfs', '/sbin/ifup')) ?? (await image.lstat('rootfs', '/usr/sbin/ifup'));
    const configuresInterface = /^\s*iface\s+(?!lo\s)\S+/m.test(interfaces);
    if (hasIfup || configuresInterface) return 'ifupdown';
  }

  if (await unitPath(image, 'systemd-networkd.service')) {
    const networkFiles = await image.readdir('rootfs', '/etc/systemd/network');
    if ((await unitEnabled(image, 'systemd-networkd.service')) || networkFiles.some((name) => name.endsWith('.network'))) return 'networkd';
  }
  return undefined;
}
