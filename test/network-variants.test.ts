/**
 * The stock image as users may really have it: every network stack the usb-gadget step knows (and
 * none), both shapes of the C2's device tree, merged /usr or not. Each fixture is built once; the
 * real build runs on it, the file systems are checked, usb0 is configured by what that image's
 * boot runs, and inspect prints the chain the boot will follow.
 */
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { getIniKey } from '../src/formats/ini.js';
import { configWithFakeBundle } from './docker-bundle-fixture.js';
import { buildImage, runScript } from './support/cli.js';
import { debugfsCat, debugfsStat } from './support/debugfs.js';
import { e2fsckClean, fsckFatClean } from './support/fsck.js';
import { type FixtureOptions, type NetworkStackVariant, stockImage, tempDir, treeListing } from './support/images.js';
import { dumpPartitions, mtypeBoot } from './support/mtools.js';

const WANTS = '/etc/systemd/system/multi-user.target.wants';
const NETWORKD_LINK = `${WANTS}/systemd-networkd.service`;
const USB0_UNIT = '/etc/systemd/system/usb0-address.service';
const USB0_DEVICE_WANTS = '/etc/systemd/system/sys-subsystem-net-devices-usb0.device.wants/usb0-address.service';
const USB0_FILE = {
  ifupdown: '/etc/network/interfaces.d/usb0',
  netplan: '/etc/netplan/60-usb0.yaml',
  networkd: '/etc/systemd/network/60-usb0.network',
  networkmanager: '/etc/NetworkManager/system-connections/usb0.nmconnection',
  'usb0-unit': '/usr/local/sbin/usb0-address',
} as const;
type Mechanism = keyof typeof USB0_FILE;

interface Variant extends FixtureOptions {
  network: NetworkStackVariant;
  profile: 'full' | 'usb2-0.5A' | 'usb3-0.9A';
  /** What brings usb0 up on this image's boot. */
  expected: Mechanism;
  /** Build again from the output: nothing may change (the fallback and the eth0 edits are found as done). */
  rebuild?: true;
}

// Each stack once, each tree shape and merged /usr with several stacks, the USB profiles where
// there is a tree to take the Ethernet out of.
const VARIANTS: Variant[] = [
  { network: 'ifupdown', profile: 'full', expected: 'ifupdown' },
  { network: 'ifupdown-installed', deviceTree: 'hardkernel', profile: 'usb2-0.5A', expected: 'ifupdown' },
  { network: 'ifupdown-interfaces-d', deviceTree: 'mainline', mergedUsr: true, profile: 'usb3-0.9A', expected: 'ifupdown' },
  { network: 'ifupdown-no-binary', deviceTree: 'hardkernel', profile: 'usb2-0.5A', expected: 'usb0-unit' },
  { network: 'netplan', deviceTree: 'mainline', mergedUsr: true, profile: 'usb2-0.5A', expected: 'netplan' },
  { network: 'networkd', deviceTree: 'hardkernel', mergedUsr: true, profile: 'full', expected: 'networkd' },
  { network: 'networkmanager', deviceTree: 'mainline', mergedUsr: true, profile: 'usb2-0.5A', expected: 'networkmanager', rebuild: true },
  { network: 'none', deviceTree: 'hardkernel', mergedUsr: true, profile: 'usb3-0.9A', expected: 'usb0-unit', rebuild: true },
];

const name = (v: Variant) => [v.network, v.deviceTree ?? 'random', v.mergedUsr ? 'merged-usr' : 'split-usr', v.profile].join(' ');

/** What usb0's file holds for each mechanism: the settings the tool acts on, not the address alone. */
async function expectUsb0Configured(img: string, mechanism: Mechanism): Promise<void> {
  const file = USB0_FILE[mechanism];
  const text = await debugfsCat(img, file);
  const stat = await debugfsStat(img, file);
  expect(stat).toMatchObject({ type: 'regular', uid: 0, gid: 0 });
  for (const [other, path] of Object.entries(USB0_FILE))
    if (other !== mechanism) expect(await debugfsStat(img, path), path).toBeUndefined();
  switch (mechanism) {
    case 'ifupdown':
      expect(text).toMatch(/^allow-hotplug usb0\niface usb0 inet static\n\taddress 10\.0\.0\.2\n/m);
      break;
    case 'netplan':
      expect(stat?.mode).toBe(0o600);
      expect(text).toMatch(/^ {4}usb0:\n {6}# .*\n {6}optional: true\n {6}addresses: \[10\.0\.0\.2\/24\]$/m);
      break;
    case 'networkd':
      expect(text).toMatch(/^\[Match\]\nName=usb0$/m);
      expect(await debugfsStat(img, NETWORKD_LINK)).toMatchObject({ type: 'symlink' });
      break;
    case 'networkmanager':
      expect(stat?.mode).toBe(0o600);
      expect(getIniKey(text, 'connection', 'interface-name')).toBe('usb0');
      expect(getIniKey(text, 'ipv4', 'method')).toBe('manual');
      expect(getIniKey(text, 'ipv4', 'address1')).toBe('10.0.0.2/24,10.0.0.1');
      break;
    case 'usb0-unit':
      expect(stat?.mode).toBe(0o755);
      expect(await debugfsCat(img, USB0_UNIT)).toMatch(/^BindsTo=sys-subsystem-net-devices-usb0\.device$/m);
      expect(await debugfsStat(img, USB0_DEVICE_WANTS)).toMatchObject({ type: 'symlink', target: USB0_UNIT });
      expect(text).toMatch(/^ip address replace "\$ADDRESS" dev usb0$/m);
      break;
  }
}

/** Nothing in the files the image's network software reads still brings eth0 up at boot and waits for it. */
async function expectEth0Optional(img: string, variant: Variant): Promise<void> {
  if (variant.network.startsWith('ifupdown') && variant.network !== 'ifupdown') {
    const eth0File = variant.network === 'ifupdown-installed' ? '/etc/network/interfaces' : '/etc/network/interfaces.d/eth0';
    expect(await debugfsCat(img, eth0File)).toMatch(/^allow-hotplug eth0$/m);
    expect(await debugfsCat(img, eth0File)).not.toMatch(/^auto eth0$/m);
  }
  if (variant.network === 'netplan')
    expect(await debugfsCat(img, '/etc/netplan/01-netcfg.yaml')).toMatch(/^ {4}eth0:\n {6}optional: true$/m);
  if (variant.network === 'networkmanager') {
    expect(getIniKey(await debugfsCat(img, '/etc/NetworkManager/system-connections/eth0.nmconnection'), 'connection', 'autoconnect')).toBe(
      'false',
    );
  }
}

describe.each(VARIANTS)('build and inspect: $network', (variant) => {
  it(`${name(variant)}: builds, fscks clean, usb0 by ${variant.expected}, and inspect shows the whole chain`, async () => {
    const input = await stockImage('stock', variant);
    const out = await tempDir();
    const config = await configWithFakeBundle(await tempDir(), { power: { profile: variant.profile } });
    const run = await buildImage(['--input', input, '--out', out, '--name', 'variant', '--config', config]);
    expect(run.stderr).not.toMatch(/internal error|error:/);
    expect(run.code).toBe(0);
    const img = join(out, 'variant.img');
    expect(run.stdout).toContain(`  usb0     ${variant.expected} from ${USB0_FILE[variant.expected]}`);
    expect(await e2fsckClean(img)).toMatchObject({ ok: true });
    expect(await fsckFatClean(img)).toMatchObject({ ok: true });
    await expectUsb0Configured(img, variant.expected);
    if (variant.profile !== 'full') {
      expect(await mtypeBoot(img, 'boot.ini')).toContain(
        `fdt rm ${variant.deviceTree === 'mainline' ? '/soc/ethernet@c9410000' : '/ethernet@0xc9410000'}; fi`,
      );
      await expectEth0Optional(img, variant);
    }

    const inspect = await runScript('src/cli/inspect-command.ts', ['--input', img, '--json']);
    expect(inspect.code).toBe(0);
    const chain = Object.fromEntries(
      (JSON.parse(inspect.stdout) as { chain: { link: string; value?: string; file: string }[] }).chain.map((l) => [l.link, l]),
    );
    expect(chain['kernel command line'].value?.split(' ')).toContain('init=/sbin/overlay-init');
    expect(chain.init).toEqual({ link: 'init', value: '/sbin/overlay-init', file: 'boot:/boot.ini' });
    expect(chain.overlay).toEqual({
      link: 'overlay',
      value: 'overlayfs over the read-only root',
      file: `rootfs:${variant.mergedUsr ? '/usr' : ''}/sbin/overlay-init`,
    });
    expect(chain['USB gadget'].value).toMatch(/^g_ether dev_addr=\S+ host_addr=\S+ use_eem=0$/);
    expect(chain['USB gadget'].file).toBe('rootfs:/etc/modprobe.d/usb-gadget.conf');
    expect(chain['usb0 brought up by'].value).toBe(variant.expected);
    expect(chain['usb0 address']).toEqual({
      link: 'usb0 address',
      value: variant.expected === 'ifupdown' ? '10.0.0.2' : '10.0.0.2/24',
      file: `rootfs:${USB0_FILE[variant.expected]}`,
    });
    expect(chain['dockerd API']).toEqual({ link: 'dockerd API', value: 'tcp://10.0.0.2:2376', file: 'rootfs:/etc/docker/daemon.json' });

    if (!variant.rebuild) return;
    const once = join(await tempDir(), 'once.img');
    execFileSync('cp', ['--sparse=always', img, once]);
    // Same --out, so the same secrets: the rebuild must change nothing.
    const again = await buildImage(['--input', once, '--out', out, '--name', 'variant', '--config', config]);
    expect(again.code).toBe(0);
    expect(again.stdout).toContain(`  usb0     ${variant.expected} from ${USB0_FILE[variant.expected]}`);
    const [a, b] = [await dumpPartitions(once), await dumpPartitions(img)];
    execFileSync('diff', ['-r', '--no-dereference', a, b]);
    expect(await treeListing(b)).toEqual(await treeListing(a));
  });
});
