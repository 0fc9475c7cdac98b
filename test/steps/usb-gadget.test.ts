import { describe, expect, it } from 'vitest';
import { UserError } from '../../src/errors.js';
import type { Operation } from '../../src/engine/operations.js';
import type { Step } from '../../src/engine/step.js';
import { sourceInterfacesD, usbGadget } from '../../src/steps/usb-gadget.js';
import { debugfsCat, debugfsStat } from '../support/debugfs.js';
import { e2fsckClean } from '../support/fsck.js';
import { patchFixture } from './patch-fixture.js';
import { appliedOn } from './probe.js';

const MODPROBE = '/etc/modprobe.d/usb-gadget.conf';
const MODULES_LOAD = '/etc/modules-load.d/usb-gadget.conf';
const IFUPDOWN = '/etc/network/interfaces.d/usb0';
const NETPLAN = '/etc/netplan/60-usb0.yaml';
const NETWORKD = '/etc/systemd/network/60-usb0.network';
const RESOLVED = '/etc/systemd/resolved.conf.d/usb0.conf';
const NETWORKD_UNIT = '/lib/systemd/system/systemd-networkd.service';
const ROOT_FILE = { type: 'regular', mode: 0o644, uid: 0, gid: 0 };

/** A test-only step that reshapes the fixture through the real applier first. */
const reshape = (summary: string, ...operations: Operation[]): Step => ({
  name: 'reshape',
  summary,
  plan: async () => operations,
  applied: async () => false,
});
const file = (path: string, content: string): Operation => ({ op: 'write', on: 'rootfs', path, content, mode: 0o644, uid: 0, gid: 0 });
const remove = (path: string): Operation => ({ op: 'remove', on: 'rootfs', path });

const netplanImage = reshape(
  'netplan image',
  file('/etc/netplan/01-netcfg.yaml', 'network:\n  version: 2\n  ethernets:\n    eth0:\n      dhcp4: true\n'),
);
const networkdImage = reshape(
  'networkd image',
  remove('/etc/network/interfaces'),
  file(NETWORKD_UNIT, '[Unit]\nDescription=Network Service\n\n[Service]\nExecStart=!!/lib/systemd/systemd-networkd\n\n[Install]\nWantedBy=multi-user.target\n'),
  file('/etc/systemd/network/10-eth0.network', '[Match]\nName=eth0\n\n[Network]\nDHCP=ipv4\n'),
);
const ncmModule = reshape('kernel with g_ncm', {
  op: 'edit',
  on: 'rootfs',
  path: '/lib/modules/3.16.85-65/modules.dep',
  what: 'add g_ncm',
  edit: (text) => `${text}kernel/drivers/usb/gadget/g_ncm.ko: kernel/drivers/usb/gadget/u_ether.ko kernel/drivers/usb/gadget/libcomposite.ko\n`,
});

/** The lines that are not comments: what the tools act on. */
const settings = (text: string) => text.split('\n').filter((line) => line.trim() !== '' && !line.trimStart().startsWith('#'));

describe('usb-gadget step on the stock image (ifupdown, systemd-resolved)', () => {
  it('loads g_ether at boot with the derived MACs and ECM+RNDIS', async () => {
    const { img, config } = await patchFixture([usbGadget], { name: 'c2-builder' });
    expect(config.usb.deviceMac).toMatch(/^[0-9a-f]2(:[0-9a-f]{2}){5}$/);
    expect(settings(await debugfsCat(img, MODULES_LOAD))).toEqual(['g_ether']);
    expect(settings(await debugfsCat(img, MODPROBE))).toEqual([
      `options g_ether dev_addr=${config.usb.deviceMac} host_addr=${config.usb.hostMac} use_eem=0`,
    ]);
    for (const path of [MODULES_LOAD, MODPROBE]) expect(await debugfsStat(img, path)).toMatchObject(ROOT_FILE);
    expect(await e2fsckClean(img)).toMatchObject({ ok: true });
  });

  it('gives usb0 its static address through /etc/network/interfaces.d, brought up when the gadget appears', async () => {
    const { img } = await patchFixture([usbGadget]);
    expect(settings(await debugfsCat(img, IFUPDOWN))).toEqual([
      'allow-hotplug usb0',
      'iface usb0 inet static',
      '\taddress 10.0.0.2',
      '\tnetmask 255.255.255.0',
      '\tgateway 10.0.0.1',
    ]);
    expect(await debugfsStat(img, IFUPDOWN)).toMatchObject(ROOT_FILE);
    // The stock file already reads interfaces.d: it stays as it was.
    expect(await debugfsCat(img, '/etc/network/interfaces')).toContain('\nsource-directory /etc/network/interfaces.d\n');
    expect((await debugfsCat(img, '/etc/network/interfaces')).match(/source-directory/g)).toHaveLength(1);
    expect(await debugfsStat(img, NETPLAN)).toBeUndefined();
    expect(await debugfsStat(img, NETWORKD)).toBeUndefined();
  });

  it('makes network.dns effective through a systemd-resolved drop-in and leaves the resolv.conf link alone', async () => {
    const { img } = await patchFixture([usbGadget], { network: { dns: ['9.9.9.9', '1.0.0.1'] } });
    expect(settings(await debugfsCat(img, RESOLVED))).toEqual(['[Resolve]', 'DNS=9.9.9.9 1.0.0.1']);
    expect(await debugfsStat(img, RESOLVED)).toMatchObject(ROOT_FILE);
    expect(await debugfsStat(img, '/etc/systemd/resolved.conf.d')).toMatchObject({ type: 'directory', mode: 0o755, uid: 0, gid: 0 });
    expect(await debugfsStat(img, '/etc/resolv.conf')).toMatchObject({ type: 'symlink', target: '../run/systemd/resolve/stub-resolv.conf' });
  });

  it('takes explicit MACs, another subnet and EEM', async () => {
    const { img } = await patchFixture([usbGadget], {
      usb: { deviceMac: '02:00:00:00:00:01', hostMac: '06:00:00:00:00:02', protocol: 'eem' },
      network: { address: '192.168.7.2/28', gateway: '192.168.7.1' },
    });
    expect(settings(await debugfsCat(img, MODPROBE))).toEqual(['options g_ether dev_addr=02:00:00:00:00:01 host_addr=06:00:00:00:00:02 use_eem=1']);
    expect(settings(await debugfsCat(img, IFUPDOWN)).slice(2)).toEqual(['\taddress 192.168.7.2', '\tnetmask 255.255.255.240', '\tgateway 192.168.7.1']);
  });

  it('refuses ncm when the kernel has no g_ncm, and loads g_ncm without use_eem when it has', async () => {
    const refused = patchFixture([usbGadget], { usb: { protocol: 'ncm' } });
    await expect(refused).rejects.toThrow(UserError);
    await expect(refused).rejects.toThrow(/usb\.protocol "ncm" needs the g_ncm kernel module but kernel 3\.16\.85-65 has no g_ncm/);

    const { img } = await patchFixture([ncmModule, usbGadget], { usb: { protocol: 'ncm', deviceMac: '02:00:00:00:00:01', hostMac: '06:00:00:00:00:02' } });
    expect(settings(await debugfsCat(img, MODULES_LOAD))).toEqual(['g_ncm']);
    expect(settings(await debugfsCat(img, MODPROBE))).toEqual(['options g_ncm dev_addr=02:00:00:00:00:01 host_addr=06:00:00:00:00:02']);
  });

  it('adds the source line when /etc/network/interfaces does not read interfaces.d, once', async () => {
    const own = reshape('interfaces without source', file('/etc/network/interfaces', 'auto lo\niface lo inet loopback\n\nauto eth0\niface eth0 inet dhcp'));
    const { img } = await patchFixture([own, usbGadget]);
    const expected = 'auto lo\niface lo inet loopback\n\nauto eth0\niface eth0 inet dhcp\nsource-directory /etc/network/interfaces.d\n';
    expect(await debugfsCat(img, '/etc/network/interfaces')).toBe(expected);
    await patchFixture([usbGadget], {}, { img });
    expect(await debugfsCat(img, '/etc/network/interfaces')).toBe(expected);
  });

  it('writes a fixed machine-id, the same for the same name and another for another name', async () => {
    const first = await patchFixture([usbGadget], { name: 'c2-builder' });
    const again = await patchFixture([usbGadget], { name: 'c2-builder' });
    const other = await patchFixture([usbGadget], { name: 'c2-builder-2' });
    const id = await debugfsCat(first.img, '/etc/machine-id');
    expect(id).toMatch(/^[0-9a-f]{32}\n$/);
    expect(id).not.toMatch(/^0+\n$/);
    expect(await debugfsCat(again.img, '/etc/machine-id')).toBe(id);
    expect(await debugfsCat(other.img, '/etc/machine-id')).not.toBe(id);
    expect(await debugfsStat(first.img, '/etc/machine-id')).toMatchObject({ type: 'regular', mode: 0o444, uid: 0, gid: 0 });
    // The fixture has no /var/lib/dbus: nothing is created there.
    expect(await debugfsStat(first.img, '/var/lib/dbus')).toBeUndefined();
  });

  it('links D-Bus\'s machine-id to /etc/machine-id when the image has /var/lib/dbus', async () => {
    const dbus = reshape('image with dbus', file('/var/lib/dbus/machine-id', 'ffffffffffffffffffffffffffffffff\n'));
    const { img } = await patchFixture([dbus, usbGadget]);
    expect(await debugfsStat(img, '/var/lib/dbus/machine-id')).toMatchObject({ type: 'symlink', target: '/etc/machine-id', uid: 0, gid: 0 });
    expect(await e2fsckClean(img)).toMatchObject({ ok: true });
  });

  it('patching the output again changes no file', async () => {
    const paths = [MODULES_LOAD, MODPROBE, IFUPDOWN, RESOLVED, '/etc/machine-id', '/etc/network/interfaces'];
    const { img } = await patchFixture([usbGadget]);
    const once = await Promise.all(paths.map((path) => debugfsCat(img, path)));
    await patchFixture([usbGadget], {}, { img });
    expect(await Promise.all(paths.map((path) => debugfsCat(img, path)))).toEqual(once);
    expect(await debugfsCat(img, '/etc/modules')).not.toContain('g_ether');
    expect(await e2fsckClean(img)).toMatchObject({ ok: true });
  });

  it('reports the stock image as not applied and the patched one as applied', async () => {
    const { img } = await patchFixture([]);
    expect(await appliedOn(usbGadget, img)).toBe(false);
    await patchFixture([usbGadget], {}, { img });
    expect(await appliedOn(usbGadget, img)).toBe(true);
  });
});

describe('usb-gadget step on other network stacks', () => {
  it('writes a netplan file (0600) on a netplan image, and no ifupdown stanza', async () => {
    const { img } = await patchFixture([netplanImage, usbGadget]);
    expect(settings(await debugfsCat(img, NETPLAN))).toEqual([
      'network:',
      '  version: 2',
      '  ethernets:',
      '    usb0:',
      '      optional: true',
      '      addresses: [10.0.0.2/24]',
      '      routes:',
      '        - to: 0.0.0.0/0',
      '          via: 10.0.0.1',
    ]);
    expect(await debugfsStat(img, NETPLAN)).toMatchObject({ type: 'regular', mode: 0o600, uid: 0, gid: 0 });
    expect(await debugfsStat(img, IFUPDOWN)).toBeUndefined();
    expect(await debugfsCat(img, RESOLVED)).toContain('\nDNS=1.1.1.1\n');
    expect(await e2fsckClean(img)).toMatchObject({ ok: true });
  });

  it('writes a .network file on a systemd-networkd image and makes sure networkd starts', async () => {
    const { img } = await patchFixture([networkdImage, usbGadget], { network: { address: '10.0.0.2/24', gateway: '10.0.0.1' } });
    expect(settings(await debugfsCat(img, NETWORKD))).toEqual([
      '[Match]',
      'Name=usb0',
      '[Link]',
      'RequiredForOnline=no',
      '[Network]',
      'Address=10.0.0.2/24',
      'Gateway=10.0.0.1',
    ]);
    expect(await debugfsStat(img, NETWORKD)).toMatchObject(ROOT_FILE);
    expect(await debugfsStat(img, '/etc/systemd/system/multi-user.target.wants/systemd-networkd.service')).toMatchObject({
      type: 'symlink',
      target: NETWORKD_UNIT,
    });
    expect(await debugfsStat(img, IFUPDOWN)).toBeUndefined();
    expect(await e2fsckClean(img)).toMatchObject({ ok: true });
  });

  it('does not enable networkd on an ifupdown image', async () => {
    const { img } = await patchFixture([reshape('networkd installed', file(NETWORKD_UNIT, '[Unit]\n')), usbGadget]);
    expect(await debugfsStat(img, IFUPDOWN)).toMatchObject(ROOT_FILE);
    expect(await debugfsStat(img, '/etc/systemd/system/multi-user.target.wants/systemd-networkd.service')).toBeUndefined();
  });

  it('refuses an image whose network stack it cannot tell', async () => {
    const attempt = patchFixture([reshape('no network config', remove('/etc/network/interfaces')), usbGadget]);
    await expect(attempt).rejects.toThrow(UserError);
    await expect(attempt).rejects.toThrow(/no network configuration this tool knows.*overlays\/rootfs/);
  });

  it('writes a static /etc/resolv.conf when the image does not use systemd-resolved', async () => {
    const staticResolv = reshape('static resolv.conf', file('/etc/resolv.conf', 'nameserver 192.168.1.1\n'));
    const { img } = await patchFixture([staticResolv, usbGadget], { network: { dns: ['9.9.9.9', '1.0.0.1'] } });
    expect(settings(await debugfsCat(img, '/etc/resolv.conf'))).toEqual(['nameserver 9.9.9.9', 'nameserver 1.0.0.1']);
    expect(await debugfsStat(img, '/etc/resolv.conf')).toMatchObject(ROOT_FILE);
    expect(await debugfsStat(img, RESOLVED)).toBeUndefined();
    expect(await debugfsCat(img, IFUPDOWN)).toContain('DNS is set in /etc/resolv.conf');
  });
});

describe('sourceInterfacesD', () => {
  it('accepts the ways an interfaces file can read interfaces.d/usb0', () => {
    for (const line of ['source-directory /etc/network/interfaces.d', 'source-directory interfaces.d/', 'source /etc/network/interfaces.d/*', 'source interfaces.d/usb*']) {
      expect(sourceInterfacesD(`auto lo\n${line}\n`)).toBe(`auto lo\n${line}\n`);
    }
  });

  it('adds source-directory when only other files are sourced or the line is commented out', () => {
    for (const line of ['source /etc/network/interfaces.d/*.cfg', '#source-directory /etc/network/interfaces.d', 'source-directory /etc/network/other.d']) {
      expect(sourceInterfacesD(`${line}\n`)).toBe(`${line}\nsource-directory /etc/network/interfaces.d\n`);
    }
  });
});
