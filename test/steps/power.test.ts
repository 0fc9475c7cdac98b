import { execFile as execFileCallback } from 'node:child_process';
import { readdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import { beforeAll, describe, expect, it } from 'vitest';
import type { Step } from '../../src/engine/step.js';
import { UserError } from '../../src/errors.js';
import { deviceTreeNodes } from '../../src/formats/fdt.js';
import { expandBootArgs, getEnv } from '../../src/formats/hush.js';
import { hotplugOnly } from '../../src/formats/ifupdown.js';
import { getIniKey } from '../../src/formats/ini.js';
import { netplanOptional } from '../../src/formats/netplan.js';
import { nmAutoconnect } from '../../src/formats/nm-keyfile.js';
import { power } from '../../src/steps/power.js';
import { C2_MAINLINE_TREE, C2_TREE, compileDeviceTree, fdtRemove } from '../device-tree.js';
import { debugfsCat } from '../support/debugfs.js';
import { e2fsckClean, fsckFatClean } from '../support/fsck.js';
import { stockImage, tempDir } from '../support/images.js';
import { mtypeBoot } from '../support/mtools.js';
import { referenceText } from '../support/reference.js';
import { lineIndex } from '../text-diff.js';
import { patchFixture } from './patch-fixture.js';
import { appliedOn } from './probe.js';

const execFile = promisify(execFileCallback);
// Written out here, not imported from the step, so a change to the step's table fails a test.
const EXPECTED = {
  'usb2-0.5A': { maxcpus: '2', maxFreq: '1536', ethernet: false },
  'usb3-0.9A': { maxcpus: '3', maxFreq: '1536', ethernet: false },
  full: { maxcpus: '4', maxFreq: '1536', ethernet: true },
} as const;
type Profile = keyof typeof EXPECTED;

const GUARD = 'if test "${disable_ethernet}" = "1"; then fdt rm /ethernet@0xc9410000; fi';

let c2Tree: Buffer;
beforeAll(async () => {
  c2Tree = await compileDeviceTree(C2_TREE);
});

/** A step standing in for the real image's files on the boot partition (the fixture's are random bytes). */
function bootFiles(files: Record<string, string | Buffer>): Step {
  return {
    name: 'test-boot-files',
    summary: 'test: put files on the boot partition',
    plan: async () => Object.entries(files).map(([file, content]) => ({ op: 'write' as const, on: 'boot' as const, path: file, content })),
    applied: async () => false,
  };
}

const withC2Tree = () => bootFiles({ '/meson64_odroidc2.dtb': c2Tree });

/** The lines `diff` (GNU diffutils) says were removed and added, without context. */
async function diffLines(before: string, after: string): Promise<{ removed: string[]; added: string[] }> {
  const dir = await tempDir();
  const [a, b] = [path.join(dir, 'a'), path.join(dir, 'b')];
  await writeFile(a, before);
  await writeFile(b, after);
  const output = await execFile('diff', ['-U0', a, b]).then(
    ({ stdout }) => stdout,
    (error: { code?: number; stdout?: string }) => {
      if (error.code !== 1) throw error; // 1: the files differ
      return error.stdout ?? '';
    },
  );
  const lines = output.split('\n').filter((line) => !/^(---|\+\+\+|@@) /.test(line));
  return {
    removed: lines.filter((line) => line.startsWith('-')).map((line) => line.slice(1)),
    added: lines.filter((line) => line.startsWith('+')).map((line) => line.slice(1)),
  };
}

/** The value lines a stock setting offers: `# setenv name "value"` and the active one. */
const offered = (text: string, name: string) =>
  [...text.matchAll(new RegExp(`^#? ?setenv ${name} "([^"]*)"`, 'gm'))].map((match) => match[1]);

describe('power step on a C2 image', () => {
  const stockBootIni = referenceText('odroid-c2/boot.ini');
  const stockDefault = referenceText('odroid-c2/boot.ini.default');
  let stockInterfaces: string;
  beforeAll(async () => {
    stockInterfaces = await debugfsCat(await stockImage(), '/etc/network/interfaces');
  });

  it.each(Object.keys(EXPECTED) as Profile[])(
    '%s: boot.ini, boot.ini.default and the network files say what the profile promises',
    async (profile) => {
      const expected = EXPECTED[profile];
      const { img } = await patchFixture([withC2Tree(), power], { power: { profile } });
      const bootIni = await mtypeBoot(img, 'boot.ini');

      // The values are HardKernel's own: listed in the stock file for a person to uncomment.
      expect(offered(stockBootIni, 'maxcpus')).toContain(expected.maxcpus);
      expect(offered(stockBootIni, 'max_freq')).toContain(expected.maxFreq);
      expect(getEnv(bootIni, 'maxcpus')).toBe(expected.maxcpus);
      expect(getEnv(bootIni, 'max_freq')).toBe(expected.maxFreq);
      expect(expandBootArgs(bootIni).split(' ')).toEqual(
        expect.arrayContaining([`maxcpus=${expected.maxcpus}`, `max_freq=${expected.maxFreq}`]),
      );

      const diff = await diffLines(stockBootIni, bootIni);
      const cpuChanged = expected.maxcpus !== '4';
      expect(diff.removed).toEqual(cpuChanged ? ['setenv maxcpus "4"'] : []);
      // diff may pair the block's blank separator with either side of it: count it apart.
      expect(diff.added.filter((line) => line !== '')).toEqual([
        ...(cpuChanged ? [`setenv maxcpus "${expected.maxcpus}"`] : []),
        ...(expected.ethernet
          ? []
          : [
              '# Ethernet off (odroid-buildx-image power profile): "1" removes the MAC from the device tree',
              'setenv disable_ethernet "1"',
              GUARD,
            ]),
      ]);
      expect(diff.added.filter((line) => line === '')).toHaveLength(expected.ethernet ? 0 : 1);

      // The bootini package re-applies these after an upgrade rewrites boot.ini.
      const bootIniDefault = await mtypeBoot(img, 'boot.ini.default');
      expect(await diffLines(stockDefault, bootIniDefault)).toEqual({
        removed: ['#maxcpus=4', '#max_freq=1536'],
        added: [`maxcpus=${expected.maxcpus}`, `max_freq=${expected.maxFreq}`],
      });
      expect(getIniKey(bootIniDefault, 'general', 'maxcpus')).toBe(expected.maxcpus);

      const interfaces = await debugfsCat(img, '/etc/network/interfaces');
      if (expected.ethernet) {
        expect(getEnv(bootIni, 'disable_ethernet')).toBeUndefined();
        expect(interfaces).toBe(stockInterfaces);
      } else {
        expect(getEnv(bootIni, 'disable_ethernet')).toBe('1');
        // After the tree is loaded and before the kernel gets it: where the stock fdt rm lines are.
        const guard = lineIndex(bootIni, /^if test "\$\{disable_ethernet\}"/);
        expect(lineIndex(bootIni, /^fdt addr /)).toBeLessThan(guard);
        expect(lineIndex(bootIni, /^booti /)).toBeGreaterThan(guard);
        expect(await diffLines(stockInterfaces, interfaces)).toEqual({ removed: ['auto eth0'], added: ['allow-hotplug eth0'] });
        expect(interfaces).toMatch(/^iface eth0 inet dhcp$/m);
      }

      expect(await fsckFatClean(img)).toMatchObject({ ok: true });
      expect(await e2fsckClean(img)).toMatchObject({ ok: true });
      expect(await appliedOn(power, img)).toBe(true);
    },
  );

  it('the fdt rm path is the Ethernet node of the C2 tree, and only that node', async () => {
    const { img } = await patchFixture([withC2Tree(), power], { power: { profile: 'usb2-0.5A' } });
    const removed = /^if test "\$\{disable_ethernet\}" = "1"; then fdt rm (\S+); fi$/m.exec(await mtypeBoot(img, 'boot.ini'))?.[1];
    expect(removed).toBe('/ethernet@0xc9410000');
    const before = deviceTreeNodes(c2Tree);
    const after = deviceTreeNodes(await fdtRemove(c2Tree, removed!));
    expect(before.filter((node) => !after.includes(node))).toEqual(['/ethernet@0xc9410000']);
  });

  it("removes the mainline tree's MAC by its real path, and eth0 in every file ifupdown reads, NetworkManager and netplan", async () => {
    const mainline = await compileDeviceTree(C2_MAINLINE_TREE);
    const eth0Keyfile = '[connection]\nid=eth0\ntype=ethernet\ninterface-name=eth0\n\n[ipv4]\nmethod=auto\n';
    const netplan = 'network:\n  version: 2\n  ethernets:\n    eth0:\n      dhcp4: true\n';
    const rootfs = (path: string, content: string) => ({
      op: 'write' as const,
      on: 'rootfs' as const,
      path,
      content,
      mode: 0o644,
      uid: 0,
      gid: 0,
    });
    const shaped: Step = {
      name: 'test-network-files',
      summary: 'test: eth0 in interfaces.d (through a glob), NetworkManager and netplan',
      plan: async () => [
        rootfs('/etc/network/interfaces', 'auto lo\niface lo inet loopback\nsource /etc/network/interfaces.d/e*\n'),
        rootfs('/etc/network/interfaces.d/eth0', 'auto eth0\niface eth0 inet dhcp\n'),
        rootfs('/etc/NetworkManager/system-connections/eth0.nmconnection', eth0Keyfile),
        rootfs('/etc/netplan/01-netcfg.yaml', netplan),
      ],
      applied: async () => false,
    };
    const { img } = await patchFixture([bootFiles({ '/meson64_odroidc2.dtb': mainline }), shaped, power], {
      power: { profile: 'usb3-0.9A' },
    });
    const removed = /^if test "\$\{disable_ethernet\}" = "1"; then fdt rm (\S+); fi$/m.exec(await mtypeBoot(img, 'boot.ini'))?.[1];
    expect(removed).toBe('/soc/ethernet@c9410000');
    const after = deviceTreeNodes(await fdtRemove(mainline, removed!));
    expect(deviceTreeNodes(mainline).filter((node) => !after.includes(node))).toEqual(['/soc/ethernet@c9410000']);
    expect(await debugfsCat(img, '/etc/network/interfaces.d/eth0')).toBe('allow-hotplug eth0\niface eth0 inet dhcp\n');
    const keyfile = await debugfsCat(img, '/etc/NetworkManager/system-connections/eth0.nmconnection');
    expect(getIniKey(keyfile, 'connection', 'autoconnect')).toBe('false');
    expect(await debugfsCat(img, '/etc/netplan/01-netcfg.yaml')).toBe(
      'network:\n  version: 2\n  ethernets:\n    eth0:\n      optional: true\n      dhcp4: true\n',
    );
    expect(await e2fsckClean(img)).toMatchObject({ ok: true });

    // full switches the Ethernet back on: NetworkManager starts eth0 again.
    await patchFixture([power], { power: { profile: 'full' } }, { img });
    expect(await debugfsCat(img, '/etc/NetworkManager/system-connections/eth0.nmconnection')).toBe(
      eth0Keyfile.replace('interface-name=eth0\n', 'interface-name=eth0\nautoconnect=true\n'),
    );
  });

  it('by default changes no byte of boot.ini: the stock CPU settings and the Ethernet stay', async () => {
    // The fixture's dtb is random bytes: full must not need the device tree.
    const { img, config } = await patchFixture([power]);
    expect(config.power.profile).toBe('full');
    expect(await mtypeBoot(img, 'boot.ini')).toBe(stockBootIni);
    expect(getEnv(stockBootIni, 'maxcpus')).toBe('4');
    expect(getEnv(stockBootIni, 'max_freq')).toBe('1536');
    expect(await debugfsCat(img, '/etc/network/interfaces')).toBe(stockInterfaces);
    expect(await appliedOn(power, img)).toBe(true);
  });

  it('patching again with the same profile leaves every file byte-identical', async () => {
    const config = { power: { profile: 'usb2-0.5A' } };
    const first = await patchFixture([withC2Tree(), power], config);
    const files = async () => [
      await mtypeBoot(first.img, 'boot.ini'),
      await mtypeBoot(first.img, 'boot.ini.default'),
      await debugfsCat(first.img, '/etc/network/interfaces'),
    ];
    const once = await files();
    const again = await patchFixture([power], config, { img: first.img });
    expect(await files()).toEqual(once);
    expect(again.result.bytesWritten).toBe(0);
    expect(await fsckFatClean(first.img)).toMatchObject({ ok: true });
  });

  it('switching profiles on a patched image: full turns the Ethernet switch back off and restores 4 cores', async () => {
    const first = await patchFixture([withC2Tree(), power], { power: { profile: 'usb2-0.5A' } });
    await patchFixture([power], { power: { profile: 'full' } }, { img: first.img });
    const bootIni = await mtypeBoot(first.img, 'boot.ini');
    expect(getEnv(bootIni, 'maxcpus')).toBe('4');
    expect(getEnv(bootIni, 'disable_ethernet')).toBe('0');
    expect(getIniKey(await mtypeBoot(first.img, 'boot.ini.default'), 'general', 'maxcpus')).toBe('4');
    expect(await appliedOn(power, first.img)).toBe(true);

    await patchFixture([power], { power: { profile: 'usb3-0.9A' } }, { img: first.img });
    const again = await mtypeBoot(first.img, 'boot.ini');
    expect(getEnv(again, 'maxcpus')).toBe('3');
    expect(getEnv(again, 'disable_ethernet')).toBe('1');
    expect(again.split(GUARD)).toHaveLength(2); // the guard is not added twice
  });

  it('reports a stock image as not applied', async () => {
    expect(await appliedOn(power, await stockImage())).toBe(false);
  });
});

describe('power step refuses', () => {
  async function refusal(steps: Step[], profile: Profile, variant?: 'c4'): Promise<{ message: string; bootIni: string }> {
    const dir = await tempDir();
    const attempt = patchFixture(steps, { power: { profile } }, { variant, dir });
    await expect(attempt).rejects.toThrow(UserError);
    const message = await attempt.then(
      () => '',
      (error: Error) => error.message,
    );
    expect(message).not.toContain('\n');
    const img = path.join(dir, (await readdir(dir)).find((file) => file.endsWith('.img'))!);
    return { message, bootIni: await mtypeBoot(img, 'boot.ini') };
  }

  it('a device tree without the Ethernet node, before writing anything', async () => {
    const tree = await compileDeviceTree(C2_TREE.replace(/ethmac: ethernet@0xc9410000 \{[^}]*\};/, ''));
    const { message, bootIni } = await refusal([bootFiles({ '/meson64_odroidc2.dtb': tree }), power], 'usb2-0.5A');
    expect(message).toMatch(
      /^meson64_odroidc2\.dtb has no Ethernet MAC node \(compatible .*, or the ethernet0 alias\), so .* use power\.profile "full"$/,
    );
    expect(bootIni).toBe(referenceText('odroid-c2/boot.ini'));
  });

  it('a device tree file that is not one', async () => {
    const { message } = await refusal([power], 'usb3-0.9A');
    expect(message).toMatch(/^meson64_odroidc2\.dtb is not a valid device tree blob/);
  });

  it('a boot.ini whose bootargs do not pass maxcpus to the kernel', async () => {
    const stock = referenceText('odroid-c2/boot.ini');
    const trimmed = stock.replace(' maxcpus=${maxcpus}', '');
    expect(trimmed).not.toBe(stock);
    const { message } = await refusal([withC2Tree(), bootFiles({ '/boot.ini': trimmed }), power], 'usb2-0.5A');
    expect(message).toBe(
      'power.profile "usb2-0.5A" needs boot.ini\'s bootargs to pass maxcpus=${maxcpus} to the kernel, and this one does not; use HardKernel\'s C2 boot.ini or power.profile "full"',
    );
  });

  it('a USB profile on a config.ini board; full leaves it alone', async () => {
    const { message } = await refusal([power], 'usb2-0.5A', 'c4');
    expect(message).toMatch(/^power\.profile "usb2-0\.5A" sets the ODROID-C2's boot\.ini but this image has config\.ini/);
    const { img, result } = await patchFixture([power], {}, { variant: 'c4' });
    expect(result.planned).toEqual([{ step: 'power', operations: [] }]);
    expect(await mtypeBoot(img, 'config.ini')).toBe(referenceText('odroid-c4/config.ini'));
  });
});

describe('hotplugOnly', () => {
  it.each([
    [
      'auto eth0 alone',
      'auto lo\niface lo inet loopback\n\nauto eth0\niface eth0 inet dhcp\n',
      'auto lo\niface lo inet loopback\n\nallow-hotplug eth0\niface eth0 inet dhcp\n',
    ],
    ['eth0 among others', 'auto lo eth0 eth1\n', 'auto lo eth1\nallow-hotplug eth0\n'],
    ['allow-auto, CRLF kept', 'allow-auto eth0\r\niface eth0 inet dhcp\r\n', 'allow-hotplug eth0\r\niface eth0 inet dhcp\r\n'],
    ['already hotplug as well', 'allow-hotplug eth0\nauto eth0\n', 'allow-hotplug eth0\n'],
    ['a similar name', 'auto eth01\n', 'auto eth01\n'],
  ])('%s', (_name, before, after) => {
    expect(hotplugOnly(before, 'eth0')).toBe(after);
    expect(hotplugOnly(after, 'eth0')).toBe(after);
  });
});

describe('netplanOptional', () => {
  it.each([
    [
      'adds it',
      'network:\n  ethernets:\n    eth0:\n      dhcp4: true\n',
      'network:\n  ethernets:\n    eth0:\n      optional: true\n      dhcp4: true\n',
    ],
    ['turns false to true', '    eth0:\n      optional: false\n    usb0: {}\n', '    eth0:\n      optional: true\n    usb0: {}\n'],
    ['no eth0', 'network:\n  ethernets:\n    eth1:\n      dhcp4: true\n', 'network:\n  ethernets:\n    eth1:\n      dhcp4: true\n'],
  ])('%s', (_name, before, after) => {
    expect(netplanOptional(before, 'eth0')).toBe(after);
    expect(netplanOptional(after, 'eth0')).toBe(after);
  });
});

describe('nmAutoconnect', () => {
  it('switches autoconnect off with a note, and back on only where the note is', () => {
    const stock = '[connection]\nid=eth0\ninterface-name=eth0\n';
    const off = nmAutoconnect(stock, false);
    expect(getIniKey(off, 'connection', 'autoconnect')).toBe('false');
    expect(nmAutoconnect(off, false)).toBe(off);
    expect(getIniKey(nmAutoconnect(off, true), 'connection', 'autoconnect')).toBe('true');
    const usersChoice = '[connection]\nid=eth0\nautoconnect=false\n';
    expect(nmAutoconnect(usersChoice, false)).toBe(usersChoice);
    expect(nmAutoconnect(usersChoice, true)).toBe(usersChoice);
  });
});
