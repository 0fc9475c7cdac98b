/** Helpers several steps share: the kernel command line and systemd units, edited offline. */
import { C2_BOOT_INI_HEADER, getEnv, setPersistentOverride, validateBootIni } from '../bootconfig.js';
import { UserError } from '../errors.js';
import type { Operation } from '../operations.js';
import type { ImageView } from './step.js';

/** FAT ignores case: the path of a file in the boot partition's root as it is spelled there. */
async function bootFile(image: ImageView, name: string): Promise<string | undefined> {
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
