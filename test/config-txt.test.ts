/** config.txt and cmdline.txt, the Raspberry Pi's boot files, edited as text against pi-gen's real files. */
import { describe, expect, it } from 'vitest';
import { UserError } from '../src/errors.js';
import { applySettingEdit, settingEditHolds } from '../src/formats/boot-edits.js';
import { cmdlineArgs, editCmdline } from '../src/formats/cmdline.js';
import {
  addConfigTxtLine,
  commentOutConfigTxtLine,
  getConfigTxtKey,
  hasConfigTxtLine,
  setConfigTxtKey,
  unsetConfigTxtKey,
} from '../src/formats/config-txt.js';
import { referenceText } from './support/reference.js';

const bookworm = referenceText('raspberrypi/bookworm/config.txt');
const trixie = referenceText('raspberrypi/trixie/config.txt');
const DWC2 = 'dtoverlay=dwc2,dr_mode=peripheral';

describe('config.txt', () => {
  it.each([
    ['bookworm', bookworm],
    ['trixie', trixie],
  ])("%s: a line for every board goes under pi-gen's final [all], once", (_suite, stock) => {
    expect(hasConfigTxtLine(stock, DWC2)).toBe(false);
    // [cm5] has the host-mode line: conditional, so not a line every board gets.
    expect(hasConfigTxtLine(stock, 'dtoverlay=dwc2,dr_mode=host')).toBe(false);
    const edited = addConfigTxtLine(stock, DWC2);
    expect(edited).toBe(`${stock}${DWC2}\n`);
    expect(addConfigTxtLine(edited, DWC2)).toBe(edited);
    expect(hasConfigTxtLine(edited, DWC2)).toBe(true);
  });

  it('adds [all] first when the file ends inside a filter, and keeps CRLF', () => {
    expect(addConfigTxtLine('arm_64bit=1\n[pi4]\notg_mode=1\n', DWC2)).toBe(`arm_64bit=1\n[pi4]\notg_mode=1\n[all]\n${DWC2}\n`);
    expect(setConfigTxtKey('[cm4]\r\notg_mode=1', 'gpu_mem', '16')).toBe('[cm4]\r\notg_mode=1\r\n[all]\r\ngpu_mem=16\r\n');
    expect(addConfigTxtLine('', DWC2)).toBe(`${DWC2}\n`);
  });

  it('sets a key for every board, replacing its line under [all], and unsets only there', () => {
    const once = setConfigTxtKey(bookworm, 'arm_freq', '1000');
    expect(getConfigTxtKey(once, 'arm_freq')).toBe('1000');
    const twice = setConfigTxtKey(once, 'arm_freq', '1200');
    expect(twice.match(/^arm_freq=/gm)).toHaveLength(1);
    expect(getConfigTxtKey(twice, 'arm_freq')).toBe('1200');
    expect(unsetConfigTxtKey(twice, 'arm_freq')).toBe(bookworm);
    expect(unsetConfigTxtKey(bookworm, 'arm_boost')).toBe(bookworm);
    // A key set before any filter already applies to every board.
    expect(getConfigTxtKey(bookworm, 'arm_boost')).toBe('1');
    expect(setConfigTxtKey(bookworm, 'arm_boost', '1')).toBe(bookworm);
    expect(getConfigTxtKey(bookworm, 'otg_mode')).toBeUndefined();
  });

  it('comments out an unconditional line with why above it, once, and leaves conditional copies', () => {
    const text = 'dtoverlay=vc4-kms-v3d\n[pi4]\ndtoverlay=vc4-kms-v3d\n';
    const edited = commentOutConfigTxtLine(text, 'dtoverlay=vc4-kms-v3d', 'why');
    expect(edited).toBe('# why\n#dtoverlay=vc4-kms-v3d\n[pi4]\ndtoverlay=vc4-kms-v3d\n');
    expect(commentOutConfigTxtLine(edited, 'dtoverlay=vc4-kms-v3d', 'why')).toBe(edited);
    expect(settingEditHolds('config.txt', edited, { kind: 'comment-out', line: 'dtoverlay=vc4-kms-v3d', why: 'why' })).toBe(true);
  });

  it('refuses lines that would break the file, and edits a format has not got', () => {
    expect(() => addConfigTxtLine(bookworm, 'a=1\nb=2')).toThrow(UserError);
    expect(() => applySettingEdit('c2-boot.ini', '', { kind: 'add-line', line: DWC2 })).toThrow(/no "add-line" edit/);
  });
});

describe('cmdline.txt', () => {
  const stock =
    'console=serial0,115200 console=tty1 root=PARTUUID=5e3da6a1-02 rootfstype=ext4 fsck.repair=yes rootwait quiet init=/usr/lib/raspberrypi-sys-mods/firstboot\n';

  it('replaces init= in place, removes what is asked, adds the rest at the end, one line', () => {
    const edited = editCmdline(stock, { remove: ['rw', 'resize'], set: ['ro', 'init=/sbin/overlay-init', 'modules-load=dwc2,g_ether'] });
    expect(edited).toBe(
      'console=serial0,115200 console=tty1 root=PARTUUID=5e3da6a1-02 rootfstype=ext4 fsck.repair=yes rootwait quiet init=/sbin/overlay-init ro modules-load=dwc2,g_ether\n',
    );
    expect(editCmdline(edited, { remove: ['rw', 'resize'], set: ['ro', 'init=/sbin/overlay-init', 'modules-load=dwc2,g_ether'] })).toBe(
      edited,
    );
    // Two console= stay: only set keys collapse to one.
    expect(cmdlineArgs(edited).filter((arg) => arg.startsWith('console='))).toHaveLength(2);
  });

  it('keeps a file without a final newline so, and refuses a second line', () => {
    expect(editCmdline('root=/dev/sda2 rw', { remove: ['rw'], set: ['ro'] })).toBe('root=/dev/sda2 ro');
    expect(() => editCmdline('a=1\nb=2\n', { remove: [], set: ['ro'] })).toThrow(/more than one line/);
  });
});
