/** systemd units in the image: where a unit is, whether it is enabled, and enable/mask done offline. */
import type { Operation } from '../engine/operations.js';
import type { ImageView } from '../engine/step.js';

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

const PACKAGE_UNIT_DIRS = ['/lib/systemd/system', '/usr/lib/systemd/system'];

/** Where the image's package-provided unit file is, if it has one. */
export async function unitPath(image: ImageView, unit: string): Promise<string | undefined> {
  for (const dir of PACKAGE_UNIT_DIRS) {
    if ((await image.lstat('rootfs', `${dir}/${unit}`))?.type === 'file') return `${dir}/${unit}`;
  }
  return undefined;
}

/** The link `systemctl enable` made for the unit in some target's .wants/ in /etc, if any. */
export async function enablementLink(image: ImageView, unit: string): Promise<string | undefined> {
  for (const entry of (await image.readdir('rootfs', UNIT_DIR)).sort()) {
    if (!entry.endsWith('.wants')) continue;
    const link = `${UNIT_DIR}/${entry}/${unit}`;
    if (await image.lstat('rootfs', link)) return link;
  }
  return undefined;
}

/** Whether `systemctl enable` has linked the unit into some target's .wants/ in /etc. */
export async function unitEnabled(image: ImageView, unit: string): Promise<boolean> {
  return (await enablementLink(image, unit)) !== undefined;
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

/** What `systemctl enable` does, offline, for a unit (by default one of /etc/systemd/system) with `WantedBy=<target>`. */
export function enableUnitOperation(unit: string, target = 'multi-user.target', unitFile = `${UNIT_DIR}/${unit}`): Operation {
  return { op: 'symlink', on: 'rootfs', path: `${UNIT_DIR}/${target}.wants/${unit}`, target: unitFile, uid: 0, gid: 0 };
}
