import { describe, expect, it } from 'vitest';
import { UserError } from '../src/errors.js';
import { locateBootFiles, rootUuidOf } from '../src/formats/boot-files.js';
import {
  addBootArg,
  BOOT_INI_MAX_BYTES,
  expandBootArgs,
  getBootArgs,
  getEnv,
  insertBeforeBoot,
  removeBootArg,
  setEnv,
  validateBootIni,
} from '../src/formats/hush.js';
import { getIniKey, setIniKey, setPersistentOverride } from '../src/formats/ini.js';
import { referenceText } from './support/reference.js';
import { changedLines, lineIndex } from './text-diff.js';

const bootIni = referenceText('odroid-c2/boot.ini');
const bootIniDefault = referenceText('odroid-c2/boot.ini.default');
const c4BootIni = referenceText('odroid-c4/boot.ini');
const configIni = referenceText('odroid-c4/config.ini');

const lines = (text: string) => text.split('\n');
const toCrlf = (text: string) => text.replace(/\n/g, '\r\n');

describe('setEnv / getEnv on the C2 boot.ini', () => {
  it('turns nographics on by changing that one line and nothing else', () => {
    expect(getEnv(bootIni, 'nographics')).toBe('0');
    const edited = setEnv(bootIni, 'nographics', '1');
    expect(changedLines(bootIni, edited)).toEqual([[lineIndex(bootIni, /^setenv nographics /), 'setenv nographics "1"']]);
    expect(getEnv(edited, 'nographics')).toBe('1');
    expect(lines(edited)[0]).toBe('ODROIDC2-UBOOT-CONFIG');
    expect(() => validateBootIni(edited)).not.toThrow();
  });

  it('is idempotent', () => {
    const once = setEnv(bootIni, 'nographics', '1');
    expect(setEnv(once, 'nographics', '1')).toBe(once);
    expect(setEnv(bootIni, 'nographics', '0')).toBe(bootIni);
  });

  it('keeps CRLF line endings and the trailing comment', () => {
    const crlf = toCrlf(bootIni);
    const edited = setEnv(crlf, 'monitor_onoff', 'true');
    expect(edited).toBe(toCrlf(setEnv(bootIni, 'monitor_onoff', 'true')));
    expect(edited).toContain('\r\nsetenv monitor_onoff "true" # true or false\r\n');
    expect(edited.replace(/\r\n/g, '')).not.toContain('\n');
  });

  it('changes the active max_freq and leaves the commented alternatives alone', () => {
    const edited = setEnv(bootIni, 'max_freq', '1944');
    expect(changedLines(bootIni, edited)).toEqual([[lineIndex(bootIni, /^setenv max_freq /), 'setenv max_freq "1944"  # 1.536GHz']]);
    expect(lines(edited).filter((line) => line.startsWith('# setenv max_freq'))).toHaveLength(8);
    expect(getEnv(edited, 'max_freq')).toBe('1944');
  });

  it('does not count or touch setenv inside if one-liners', () => {
    expect(getEnv(bootIni, 'hid_quirks')).toBeUndefined();
    const edited = setEnv(bootIni, 'hid_quirks', 'x');
    expect(edited).toContain('then setenv hid_quirks "usbhid.quirks=0x0eef:0x0005:0x0004"; fi');
    expect(getEnv(edited, 'hid_quirks')).toBe('x');
  });

  it('inserts a missing setting under its commented alternatives', () => {
    const edited = setEnv(bootIni, 'vout', 'hdmi');
    const at = lineIndex(bootIni, /^# setenv vout "vga"/) + 1;
    const before = lines(bootIni);
    expect(lines(edited)).toEqual([...before.slice(0, at), 'setenv vout "hdmi"', ...before.slice(at)]);
    expect(setEnv(edited, 'vout', 'hdmi')).toBe(edited);
  });

  it("inserts a new setting above the boot arguments, in the file's line ending", () => {
    const crlf = toCrlf(bootIni);
    const edited = setEnv(crlf, 'overlay_size', '50%');
    expect(edited).toContain('\r\nsetenv overlay_size "50%"\r\n# Boot Arguments\r\n');
    expect(setEnv(edited, 'overlay_size', '50%')).toBe(edited);
  });

  it('rejects values that cannot be written inside double quotes', () => {
    expect(() => setEnv(bootIni, 'm', 'a"b')).toThrow(UserError);
  });
});

describe('boot arguments', () => {
  const init = 'init=/sbin/overlay-init';

  it('adds init= once, even when applied twice', () => {
    const once = addBootArg(bootIni, init);
    expect(addBootArg(once, init)).toBe(once);
    expect(getBootArgs(once).filter((arg) => arg.startsWith('init='))).toEqual([init]);
    expect(getBootArgs(once).at(-1)).toBe(init);
    expect(changedLines(bootIni, once)).toHaveLength(1);
  });

  it('replaces an existing init= instead of adding a second', () => {
    const other = addBootArg(bootIni, 'init=/bin/sh');
    const replaced = addBootArg(other, init);
    expect(getBootArgs(replaced).filter((arg) => arg.startsWith('init='))).toEqual([init]);
    expect(getBootArgs(replaced)).toEqual([...getBootArgs(bootIni), init]);
  });

  it('removes an arg, restoring the stock line', () => {
    expect(removeBootArg(addBootArg(bootIni, init), 'init')).toBe(bootIni);
    expect(removeBootArg(bootIni, 'init')).toBe(bootIni);
    expect(getBootArgs(removeBootArg(bootIni, 'root'))[0]).toBe('rootwait');
  });

  it('expands to the kernel command line U-Boot passes', () => {
    const cmdline = expandBootArgs(bootIni);
    expect(cmdline).toMatch(
      /^root=UUID=e139ce78-9841-40fe-8823-96a304a09859 rootwait ro console=ttyS0,115200n8 console=tty0 no_console_suspend hdmimode=1080p60hz m_bpp=32 vout= /,
    );
    expect(cmdline).toContain(' max_freq=1536 maxcpus=4 monitor_onoff=false ');
    // set by `if test "${disable_vu7}" = "false"; then setenv hid_quirks ...; fi`
    expect(cmdline.endsWith(' usbmulticam=false usbhid.quirks=0x0eef:0x0005:0x0004')).toBe(true);
    expect(cmdline).not.toMatch(/\$|\s\s|modeline/);
    expect(expandBootArgs(addBootArg(bootIni, init))).toBe(`${cmdline} ${init}`);
  });

  it('expands the C4 script too, where config.ini is not loaded', () => {
    expect(expandBootArgs(c4BootIni)).toContain('rootwait rw console=ttyS0,115200n8 no_console_suspend');
  });
});

describe('validateBootIni', () => {
  it('accepts the stock file', () => {
    expect(() => validateBootIni(bootIni)).not.toThrow();
    expect(() => validateBootIni(toCrlf(bootIni))).not.toThrow();
  });

  it('needs the header line', () => {
    expect(() => validateBootIni(c4BootIni)).toThrow(/ODROIDC2-UBOOT-CONFIG/);
    expect(() => validateBootIni(`\n${bootIni}`)).toThrow(UserError);
  });

  it('refuses more than U-Boot reads', () => {
    const padded = (size: number) => `${bootIni + '#'.repeat(size - Buffer.byteLength(bootIni) - 1)}\n`;
    expect(() => validateBootIni(padded(BOOT_INI_MAX_BYTES))).not.toThrow();
    expect(() => validateBootIni(padded(BOOT_INI_MAX_BYTES + 1))).toThrow(/65537 bytes.*65536/);
  });
});

describe('config.ini (C4/N2)', () => {
  it('replaces a key in [generic] in place, idempotently', () => {
    const edited = setIniKey(configIni, 'generic', 'display_autodetect', 'false');
    expect(changedLines(configIni, edited)).toEqual([[lineIndex(configIni, /^display_autodetect=/), 'display_autodetect=false']]);
    expect(getIniKey(edited, 'generic', 'display_autodetect')).toBe('false');
    expect(setIniKey(edited, 'generic', 'display_autodetect', 'false')).toBe(edited);
  });

  it('adds a missing key at the end of its section, not to the commented example', () => {
    const edited = setIniKey(configIni, 'generic', 'max_freq_a55', '1800');
    const at = lineIndex(configIni, /^overlays="spi0/) + 1;
    const before = lines(configIni);
    expect(lines(edited)).toEqual([...before.slice(0, at), 'max_freq_a55=1800', ...before.slice(at)]);
    expect(getIniKey(edited, 'generic', 'max_freq_a55')).toBe('1800');
    expect(getIniKey(edited, 'overlay_custom', 'max_freq_a55')).toBeUndefined();
    expect(setIniKey(edited, 'generic', 'max_freq_a55', '1800')).toBe(edited);
  });

  it('keeps sections apart', () => {
    const edited = setIniKey(configIni, 'overlay_custom', 'overlays', '"i2c0"');
    expect(getIniKey(edited, 'overlay_custom', 'overlays')).toBe('"i2c0"');
    expect(getIniKey(edited, 'generic', 'overlays')).toBe('"spi0 i2c0 i2c1 uart0"');
    const added = setIniKey(configIni, 'headless', 'x', '1');
    expect(added.endsWith('overlays="hktft35"\n\n[headless]\nx=1\n')).toBe(true);
  });

  it('sets the key the nographics stand-in uses, which the C4 boot.ini reads', () => {
    expect(c4BootIni).toContain('${display_autodetect}');
    expect(getIniKey(setIniKey(configIni, 'generic', 'display_autodetect', 'false'), 'generic', 'display_autodetect')).toBe('false');
  });
});

describe('boot.ini.default overrides', () => {
  it('uncomments the example in [general]', () => {
    const edited = setPersistentOverride(bootIniDefault, 'nographics', '1');
    expect(changedLines(bootIniDefault, edited)).toEqual([[lineIndex(bootIniDefault, /^#nographics=/), 'nographics=1']]);
    expect(getIniKey(edited, 'general', 'nographics')).toBe('1');
    expect(setPersistentOverride(edited, 'nographics', '1')).toBe(edited);
    expect(setPersistentOverride(edited, 'nographics', '0')).toBe(edited.replace('nographics=1', 'nographics=0'));
  });

  it('adds a key that has no example at the end of [general]', () => {
    const edited = setPersistentOverride(bootIniDefault, 'usbmulticam', 'false');
    expect(edited).toBe(`${bootIniDefault}usbmulticam=false\n`);
  });
});

describe('locateBootFiles', () => {
  it('tells the C2 from boards that read config.ini, keeping names as the FAT spells them', () => {
    expect(locateBootFiles(['boot.ini', 'Image', 'meson64_odroidc2.dtb', 'uInitrd'])).toEqual({
      kind: 'c2-boot.ini',
      settings: '/boot.ini',
      bootIni: '/boot.ini',
    });
    expect(locateBootFiles(['BOOT.INI', 'Boot.ini.default'])).toEqual({
      kind: 'c2-boot.ini',
      settings: '/BOOT.INI',
      bootIni: '/BOOT.INI',
      persistent: '/Boot.ini.default',
    });
    expect(locateBootFiles(['boot.ini', 'config.ini', 'Image.gz'])).toMatchObject({
      kind: 'config.ini',
      settings: '/config.ini',
      bootIni: '/boot.ini',
    });
    expect(locateBootFiles(['Image'])).toBeUndefined();
  });
});

describe('rootUuidOf', () => {
  it("reads root=UUID= from the C2's bootargs as U-Boot expands them", () => {
    expect(rootUuidOf(bootIni)).toBe('e139ce78-9841-40fe-8823-96a304a09859');
  });

  it('ignores a commented-out root and gives undefined for a script it cannot follow', () => {
    expect(
      rootUuidOf('#setenv bootargs "root=UUID=e139ce78-9841-40fe-8823-96a304a09859"\nsetenv bootargs "root=/dev/mmcblk0p2"\n'),
    ).toBeUndefined();
    expect(rootUuidOf('setenv bootargs "root=UUID=e139ce78-9841-40fe-8823-96a304a09859\n')).toBeUndefined();
  });
});

describe('insertBeforeBoot', () => {
  it('puts the lines directly above booti, after the device tree is loaded, CRLF kept', () => {
    const edited = insertBeforeBoot(bootIni, ['# x', 'fdt rm /x']);
    const at = lines(edited).indexOf('fdt rm /x');
    expect(lines(edited)[at + 1]).toMatch(/^booti /);
    expect(lineIndex(edited, /^fdt addr /)).toBeLessThan(at);
    expect(edited.replace('# x\nfdt rm /x\n', '')).toBe(bootIni);
    const crlf = bootIni.replaceAll('\n', '\r\n');
    expect(insertBeforeBoot(crlf, ['fdt rm /x'])).toBe(insertBeforeBoot(bootIni, ['fdt rm /x']).replaceAll('\n', '\r\n'));
  });

  it('ignores a boot command inside an if-block', () => {
    const script = 'fdt addr 1\nif test a = b; then booti 1 2 3; fi\nbootm 4\n';
    expect(insertBeforeBoot(script, ['fdt rm /x'])).toBe('fdt addr 1\nif test a = b; then booti 1 2 3; fi\nfdt rm /x\nbootm 4\n');
  });

  it('refuses a script that boots nothing or edits the tree before loading it', () => {
    expect(() => insertBeforeBoot('fdt addr 1\n', ['fdt rm /x'])).toThrow(UserError);
    expect(() => insertBeforeBoot('booti 1 2 3\nfdt addr 1\n', ['fdt rm /x'])).toThrow(/no "fdt addr" before its boot command/);
  });
});
