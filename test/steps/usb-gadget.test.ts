import { spawnSync } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import type { Operation } from '../../src/engine/operations.js';
import type { Step } from '../../src/engine/step.js';
import { UserError } from '../../src/errors.js';
import { sourceDirectoryFor } from '../../src/formats/ifupdown.js';
import { usbGadget } from '../../src/steps/usb-gadget.js';
import { debugfsCat, debugfsStat } from '../support/debugfs.js';
import { e2fsckClean } from '../support/fsck.js';
import { tempDir } from '../support/images.js';
import { patchFixture } from './patch-fixture.js';
import { appliedOn } from './probe.js';

const MODPROBE = '/etc/modprobe.d/usb-gadget.conf';
const MODULES_LOAD = '/etc/modules-load.d/usb-gadget.conf';
const IFUPDOWN = '/etc/network/interfaces.d/usb0';
const NETPLAN = '/etc/netplan/60-usb0.yaml';
const NETWORKD = '/etc/systemd/network/60-usb0.network';
const RESOLVED = '/etc/systemd/resolved.conf.d/usb0.conf';
const NETWORKD_UNIT = '/lib/systemd/system/systemd-networkd.service';
const NM_KEYFILE = '/etc/NetworkManager/system-connections/usb0.nmconnection';
const NM_MANAGED_RULE = '/etc/udev/rules.d/86-usb0-networkmanager.rules';
const USB0_UNIT_FILE = '/etc/systemd/system/usb0-address.service';
const USB0_SCRIPT = '/usr/local/sbin/usb0-address';
const ROOT_FILE = { type: 'regular', mode: 0o644, uid: 0, gid: 0 };

/** A test-only step that reshapes the fixture through the real applier first. */
const reshape = (summary: string, ...operations: Operation[]): Step => ({
  name: 'reshape',
  summary,
  plan: async () => operations,
  applied: async () => false,
});
const file = (path: string, content: string, mode = 0o644): Operation => ({
  op: 'write',
  on: 'rootfs',
  path,
  content,
  mode,
  uid: 0,
  gid: 0,
});
const remove = (path: string): Operation => ({ op: 'remove', on: 'rootfs', path });

const netplanImage = reshape(
  'netplan image',
  file('/etc/netplan/01-netcfg.yaml', 'network:\n  version: 2\n  ethernets:\n    eth0:\n      dhcp4: true\n'),
);
const networkdImage = reshape(
  'networkd image',
  remove('/etc/network/interfaces'),
  file(
    NETWORKD_UNIT,
    '[Unit]\nDescription=Network Service\n\n[Service]\nExecStart=!!/lib/systemd/systemd-networkd\n\n[Install]\nWantedBy=multi-user.target\n',
  ),
  file('/etc/systemd/network/10-eth0.network', '[Match]\nName=eth0\n\n[Network]\nDHCP=ipv4\n'),
);
const networkManagerImage = reshape(
  'NetworkManager image',
  remove('/etc/network/interfaces'),
  file('/lib/systemd/system/NetworkManager.service', '[Service]\nExecStart=/usr/sbin/NetworkManager --no-daemon\n'),
  {
    op: 'symlink',
    on: 'rootfs',
    path: '/etc/systemd/system/multi-user.target.wants/NetworkManager.service',
    target: '/lib/systemd/system/NetworkManager.service',
  },
  file(
    '/etc/NetworkManager/system-connections/eth0.nmconnection',
    '[connection]\nid=eth0\ntype=ethernet\ninterface-name=eth0\n\n[ipv4]\nmethod=auto\n',
    0o600,
  ),
);
const ncmModule = reshape('kernel with g_ncm', {
  op: 'edit',
  on: 'rootfs',
  path: '/lib/modules/3.16.85-65/modules.dep',
  change: {
    change: 'append-line',
    line: 'kernel/drivers/usb/gadget/g_ncm.ko: kernel/drivers/usb/gadget/u_ether.ko kernel/drivers/usb/gadget/libcomposite.ko',
  },
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
    expect(await debugfsStat(img, NM_MANAGED_RULE)).toBeUndefined();
  });

  it('makes network.dns effective through a systemd-resolved drop-in and leaves the resolv.conf link alone', async () => {
    const { img } = await patchFixture([usbGadget], { network: { dns: ['9.9.9.9', '1.0.0.1'] } });
    expect(settings(await debugfsCat(img, RESOLVED))).toEqual(['[Resolve]', 'DNS=9.9.9.9 1.0.0.1']);
    expect(await debugfsStat(img, RESOLVED)).toMatchObject(ROOT_FILE);
    expect(await debugfsStat(img, '/etc/systemd/resolved.conf.d')).toMatchObject({ type: 'directory', mode: 0o755, uid: 0, gid: 0 });
    expect(await debugfsStat(img, '/etc/resolv.conf')).toMatchObject({
      type: 'symlink',
      target: '../run/systemd/resolve/stub-resolv.conf',
    });
  });

  it('takes explicit MACs, another subnet and EEM', async () => {
    const { img } = await patchFixture([usbGadget], {
      usb: { deviceMac: '02:00:00:00:00:01', hostMac: '06:00:00:00:00:02', protocol: 'eem' },
      network: { address: '192.168.7.2/28', gateway: '192.168.7.1' },
    });
    expect(settings(await debugfsCat(img, MODPROBE))).toEqual([
      'options g_ether dev_addr=02:00:00:00:00:01 host_addr=06:00:00:00:00:02 use_eem=1',
    ]);
    expect(settings(await debugfsCat(img, IFUPDOWN)).slice(2)).toEqual([
      '\taddress 192.168.7.2',
      '\tnetmask 255.255.255.240',
      '\tgateway 192.168.7.1',
    ]);
  });

  it('refuses ncm when the kernel has no g_ncm, and loads g_ncm without use_eem when it has', async () => {
    const refused = patchFixture([usbGadget], { usb: { protocol: 'ncm' } });
    await expect(refused).rejects.toThrow(UserError);
    await expect(refused).rejects.toThrow(/usb\.protocol "ncm" needs the g_ncm kernel module but kernel 3\.16\.85-65 has no g_ncm/);

    const { img } = await patchFixture([ncmModule, usbGadget], {
      usb: { protocol: 'ncm', deviceMac: '02:00:00:00:00:01', hostMac: '06:00:00:00:00:02' },
    });
    expect(settings(await debugfsCat(img, MODULES_LOAD))).toEqual(['g_ncm']);
    expect(settings(await debugfsCat(img, MODPROBE))).toEqual(['options g_ncm dev_addr=02:00:00:00:00:01 host_addr=06:00:00:00:00:02']);
  });

  it('adds the source line when /etc/network/interfaces does not read interfaces.d, once', async () => {
    const own = reshape(
      'interfaces without source',
      file('/etc/network/interfaces', 'auto lo\niface lo inet loopback\n\nauto eth0\niface eth0 inet dhcp'),
    );
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

  it("links D-Bus's machine-id to /etc/machine-id when the image has /var/lib/dbus", async () => {
    const dbus = reshape('image with dbus', file('/var/lib/dbus/machine-id', 'ffffffffffffffffffffffffffffffff\n'));
    const { img } = await patchFixture([dbus, usbGadget]);
    expect(await debugfsStat(img, '/var/lib/dbus/machine-id')).toMatchObject({
      type: 'symlink',
      target: '/etc/machine-id',
      uid: 0,
      gid: 0,
    });
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

  it('writes a NetworkManager keyfile (0600 root) on an image where only NetworkManager runs', async () => {
    const { img } = await patchFixture([networkManagerImage, usbGadget], { network: { dns: ['9.9.9.9', '1.0.0.1'] } });
    expect(settings(await debugfsCat(img, NM_KEYFILE))).toEqual([
      '[connection]',
      'id=usb0',
      'type=ethernet',
      'interface-name=usb0',
      'autoconnect=true',
      '[ipv4]',
      'method=manual',
      'address1=10.0.0.2/24,10.0.0.1',
      'dns=9.9.9.9;1.0.0.1;',
      '[ipv6]',
      'method=ignore',
    ]);
    expect(await debugfsStat(img, NM_KEYFILE)).toMatchObject({ type: 'regular', mode: 0o600, uid: 0, gid: 0 });
    // NetworkManager's own 85-nm-unmanaged.rules leaves gadget interfaces unmanaged: a later rule
    // (by file name) hands usb0 back, or the keyfile is never applied (the boot test's
    // NetworkManager-only variant found usb0 without its address).
    expect(settings(await debugfsCat(img, NM_MANAGED_RULE))).toEqual([
      'SUBSYSTEM=="net", ACTION=="add|change|move", ENV{INTERFACE}=="usb0", ENV{NM_UNMANAGED}="0"',
    ]);
    expect('86-usb0-networkmanager.rules' > '85-nm-unmanaged.rules').toBe(true);
    expect(await debugfsStat(img, NM_MANAGED_RULE)).toMatchObject(ROOT_FILE);
    expect(await debugfsStat(img, IFUPDOWN)).toBeUndefined();
    expect(await debugfsStat(img, USB0_UNIT_FILE)).toBeUndefined();
    expect(await e2fsckClean(img)).toMatchObject({ ok: true });
  });

  it('falls back to networkd where its unit exists and nothing configures the network', async () => {
    const bare = reshape('no network config, networkd installed', remove('/etc/network/interfaces'), file(NETWORKD_UNIT, '[Unit]\n'));
    const { img } = await patchFixture([bare, usbGadget]);
    expect(settings(await debugfsCat(img, NETWORKD))).toContain('Address=10.0.0.2/24');
    expect(await debugfsStat(img, '/etc/systemd/system/multi-user.target.wants/systemd-networkd.service')).toMatchObject({
      type: 'symlink',
      target: NETWORKD_UNIT,
    });
  });

  it("falls back to its own unit, started by usb0's device, on an image with no network software", async () => {
    const { img } = await patchFixture([reshape('no network config', remove('/etc/network/interfaces')), usbGadget]);
    const unit = await debugfsCat(img, USB0_UNIT_FILE);
    expect(settings(unit)).toEqual(
      expect.arrayContaining([
        'BindsTo=sys-subsystem-net-devices-usb0.device',
        'ExecStart=/usr/local/sbin/usb0-address',
        'WantedBy=sys-subsystem-net-devices-usb0.device',
      ]),
    );
    expect(await debugfsStat(img, '/etc/systemd/system/sys-subsystem-net-devices-usb0.device.wants/usb0-address.service')).toMatchObject({
      type: 'symlink',
      target: USB0_UNIT_FILE,
    });
    expect(await debugfsStat(img, USB0_SCRIPT)).toMatchObject({ type: 'regular', mode: 0o755, uid: 0, gid: 0 });
    expect((await debugfsCat(img, USB0_SCRIPT)).split('\n', 1)[0]).toBe('#!/bin/sh');
    expect(settings(await debugfsCat(img, USB0_SCRIPT))).toEqual([
      'set -eu',
      'ADDRESS=10.0.0.2/24',
      'GATEWAY=10.0.0.1',
      'ip link set dev usb0 up',
      'ip address replace "$ADDRESS" dev usb0',
      'ip route replace default via "$GATEWAY" dev usb0',
    ]);
    const script = join(await tempDir(), 'usb0-address');
    await writeFile(script, await debugfsCat(img, USB0_SCRIPT));
    const check = spawnSync('shellcheck', ['-s', 'sh', script], { encoding: 'utf8' });
    expect(check.error).toBeUndefined();
    expect(check.stdout + check.stderr).toBe('');
    expect(check.status).toBe(0);
    expect(await debugfsStat(img, IFUPDOWN)).toBeUndefined();
    expect(await e2fsckClean(img)).toMatchObject({ ok: true });
  });

  it('falls back when ifupdown is configured through interfaces.d and enabled but its ifup is missing', async () => {
    const broken = reshape(
      'ifupdown without ifup',
      file('/etc/network/interfaces', 'source-directory /etc/network/interfaces.d\n'),
      file('/etc/network/interfaces.d/eth0', 'auto eth0\niface eth0 inet dhcp\n'),
      file('/lib/systemd/system/networking.service', '[Service]\nExecStart=/sbin/ifup -a --read-environment\n'),
      {
        op: 'symlink',
        on: 'rootfs',
        path: '/etc/systemd/system/multi-user.target.wants/networking.service',
        target: '/lib/systemd/system/networking.service',
      },
    );
    const { img } = await patchFixture([broken, usbGadget]);
    expect(await debugfsStat(img, USB0_SCRIPT)).toMatchObject({ type: 'regular' });
    expect(await debugfsStat(img, IFUPDOWN)).toBeUndefined();
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

/** What the step asks of /etc/network/interfaces: read the directory usb0's stanza is in. */
const sourceInterfacesD = (text: string) => sourceDirectoryFor(text, '/etc/network/interfaces', '/etc/network/interfaces.d/usb0');

describe('sourceDirectoryFor usb0', () => {
  it('accepts the ways an interfaces file can read interfaces.d/usb0', () => {
    for (const line of [
      'source-directory /etc/network/interfaces.d',
      'source-directory interfaces.d/',
      'source /etc/network/interfaces.d/*',
      'source interfaces.d/usb*',
    ]) {
      expect(sourceInterfacesD(`auto lo\n${line}\n`)).toBe(`auto lo\n${line}\n`);
    }
  });

  it('adds source-directory when only other files are sourced or the line is commented out', () => {
    for (const line of [
      'source /etc/network/interfaces.d/*.cfg',
      '#source-directory /etc/network/interfaces.d',
      'source-directory /etc/network/other.d',
    ]) {
      expect(sourceInterfacesD(`${line}\n`)).toBe(`${line}\nsource-directory /etc/network/interfaces.d\n`);
    }
  });
});
