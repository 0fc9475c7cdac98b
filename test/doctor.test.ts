/**
 * host/doctor.sh: the chain from the host to the device checked link by link, run against
 * stand-ins for the system tools (ip, ping, exportfs, showmount, docker) and a stand-in
 * /sys/class/net. Against a booted device it runs in the boot test.
 */
import type { ChildProcess } from 'node:child_process';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { resolveConfig } from '../src/config/load.js';
import { hostKitDirOf, writeHostKit } from '../src/host-kit/host-kit.js';
import {
  FIREWALL_CMD,
  fakeBin,
  KIT_HOST_NEEDS,
  type KitHost,
  kitHost,
  listenIn,
  runKitScript,
  SETUP_BUILDX_DOCKER,
  TCP_PROBE,
  withNmSharedZone,
} from './kit-helpers.js';
import { skipWithout, tempDir } from './support/images.js';

const MAC = '02:aa:bb:cc:dd:06';
const CONFIG = resolveConfig({
  name: 'c2-test',
  usb: { hostMac: MAC, deviceMac: '02:aa:bb:cc:dd:02' },
  nfs: { export: '/srv/c2-test/a-long-path-that-exportfs-wraps-onto-its-next-line' },
});

/** `ip -o -4 address show [dev X]`: this host has $ADDRESS on the USB link's interface. */
const IP = `
[ -n "\${ADDRESS:-}" ] && echo "7: enx02aabbccdd06    inet $ADDRESS brd 10.0.0.255 scope global enx02aabbccdd06\\       valid_lft forever preferred_lft forever"
echo "1: lo    inet 127.0.0.1/8 scope host lo\\       valid_lft forever preferred_lft forever"`;

/** The device's Docker: answers the kit's certificate with $DRIVER as its storage driver; buildx knows $BUILDER. */
const DOCKER = `
echo "docker $*" >>"$STATE/log"
case "$1 $2" in
  "buildx version") [ -z "\${NO_BUILDX:-}" ] ;;
  "buildx inspect") [ "$3" = "\${BUILDER:-}" ] ;;
  --tlsverify*)
    [ -n "\${DRIVER:-}" ] || { echo "error during connect: connection refused" >&2; exit 1; }
    for command; do :; done
    [ "$command" = info ] && printf 'Server:\\n Containers: 0\\n Storage Driver: %s\\n' "$DRIVER"
    exit 0 ;;
  *) echo "unexpected: docker $*" >&2; exit 2 ;;
esac`;

/** `ss -Hltn 'sport = :2049'`: the kernel's NFS server listening on every address. */
const SS = `echo 'LISTEN 0      64           0.0.0.0:2049       0.0.0.0:*'`;

/** exportfs -v as Linux prints it: a long path puts its clients on the next line. */
const EXPORTFS = `printf '/srv/other\\t10.0.0.9(sync,rw)\\n%s\\n\\t\\t%s(sync,wdelay,hide,no_subtree_check,sec=sys,rw,secure,no_root_squash,no_all_squash)\\n' "$EXPORTED" "$CLIENT"`;

let kit: string;
let sysfs: string;
let bin: string;
beforeAll(async () => {
  const out = await tempDir();
  await (await writeHostKit(out, [CONFIG], join(out, 'secrets'))).commit();
  kit = hostKitDirOf(out);
  sysfs = await tempDir();
  for (const [name, mac] of [
    ['wlan0', '3c:22:fb:00:00:01'],
    ['enx02aabbccdd06', MAC.toUpperCase()],
  ]) {
    await mkdir(join(sysfs, name));
    await writeFile(join(sysfs, name, 'address'), `${mac}\n`);
  }
  bin = await fakeBin({ ip: IP, ping: '[ -n "${PING:-}" ]', ss: SS, exportfs: EXPORTFS, docker: DOCKER }, ['awk']);
});

/** A board that holds every link; `change` breaks one. */
async function doctor(change: Record<string, string> = {}) {
  const state = await tempDir();
  const env = {
    STATE: state,
    SYSFS_NET: sysfs,
    ADDRESS: '10.0.0.1/24',
    PING: 'yes',
    EXPORTED: CONFIG.nfs.export,
    CLIENT: '10.0.0.2',
    DRIVER: 'overlay2',
    BUILDER: 'c2-test',
    ...change,
  };
  const result = runKitScript(join(kit, 'doctor.sh'), bin, env);
  const lines = result.stdout.trim().split('\n');
  return { ...result, lines, state };
}

describe('doctor.sh', () => {
  it('with no board attached: ✗ at the USB link, naming the MAC, and stops there with a non-zero exit', async () => {
    const result = await doctor({ SYSFS_NET: await tempDir() });
    expect(result.status).toBe(1);
    expect(result.lines).toEqual([
      `✗ USB link to c2-test: no network interface has MAC ${MAC}; plug the board's micro-USB port into this computer and wait for it to boot (about 30 s)`,
    ]);
  });

  it("with every link holding: one ✓ per link in the order of the chain, through the kit's client certificate", async () => {
    const result = await doctor();
    expect(result.stderr).toBe('');
    expect(result.status).toBe(0);
    expect(result.lines).toEqual([
      `✓ USB link to c2-test: enx02aabbccdd06 (MAC ${MAC})`,
      '✓ address: enx02aabbccdd06 has 10.0.0.1/24',
      '✓ ping: c2-test (10.0.0.2) answers',
      `✓ NFS: 10.0.0.1 exports ${CONFIG.nfs.export} to 10.0.0.2 and listens on port 2049`,
      "✓ Docker API: https://10.0.0.2:2376 answers with this kit's client certificate (tls/)",
      '✓ storage: c2-test runs the overlay2 driver',
      '✓ buildx: builder c2-test exists',
    ]);
    const calls = await readFile(join(result.state, 'log'), 'utf8');
    expect(calls).toContain(
      `docker --tlsverify --tlscacert ${kit}/tls/ca.pem --tlscert ${kit}/tls/cert.pem --tlskey ${kit}/tls/key.pem -H tcp://10.0.0.2:2376 version`,
    );
  });

  it("warns about vfs, and accepts an export to the device's subnet", async () => {
    const result = await doctor({ DRIVER: 'vfs', CLIENT: '10.0.0.0/24' });
    expect(result.status).toBe(0);
    expect(result.lines[3]).toMatch(/^✓ NFS: /);
    expect(result.lines[5]).toMatch(/^⚠ storage: c2-test runs the vfs driver, which copies every layer in full over NFS/);
  });

  it('stops at the first broken link with what to do', async () => {
    const cases: [Record<string, string>, RegExp][] = [
      [
        { ADDRESS: '' },
        /^✗ address: enx02aabbccdd06 does not have 10\.0\.0\.1\/24; import the kit's c2-test\.nmconnection .* or run sudo \.\/nat\.sh$/,
      ],
      [{ PING: '' }, /^✗ ping: c2-test \(10\.0\.0\.2\) does not answer; wait until it has booted/],
      [{ CLIENT: '10.0.0.3' }, /^✗ NFS: this host does not export .* to 10\.0\.0\.2; /],
      [{ CLIENT: '10.0.1.0/24' }, /^✗ NFS: this host does not export /],
      [{ EXPORTED: '/srv/c2' }, /^✗ NFS: this host does not export /],
      [
        { DRIVER: '' },
        /^✗ Docker API: https:\/\/10\.0\.0\.2:2376 does not answer with this kit's client certificate \(error during connect: connection refused\); /,
      ],
      [{ BUILDER: 'other' }, /^✗ buildx: no builder c2-test; run \.\/setup-buildx\.sh$/],
      // The plugin's package as Debian, Ubuntu and Fedora name it, and as Docker's repository does.
      [
        { NO_BUILDX: '1' },
        /^✗ buildx: docker buildx not found; install the buildx plugin: docker-buildx \(.*Ubuntu, Fedora 41 and later\) or docker-buildx-plugin /,
      ],
    ];
    for (const [change, line] of cases) {
      const result = await doctor(change);
      expect(result.status, JSON.stringify(change)).toBe(1);
      expect(result.lines.at(-1), JSON.stringify(change)).toMatch(line);
      expect(
        result.lines.slice(0, -1).every((earlier) => earlier.startsWith('✓ ')),
        JSON.stringify(change),
      ).toBe(true);
    }
  });

  it('tells a missing tool from a broken link', async () => {
    const noPing = await fakeBin({ ip: IP, exportfs: EXPORTFS, docker: DOCKER });
    const result = runKitScript(join(kit, 'doctor.sh'), noPing, { STATE: await tempDir(), SYSFS_NET: sysfs, ADDRESS: '10.0.0.1/24' });
    expect(result.status).toBe(1);
    expect(result.stdout.trim().split('\n').at(-1)).toBe('✗ ping: the ping command is missing here; install iputils-ping');
  });

  it('asks a remote NFS server with showmount', async () => {
    const out = await tempDir();
    const remote = resolveConfig({
      name: 'c2-test',
      usb: { hostMac: MAC, deviceMac: '02:aa:bb:cc:dd:02' },
      nfs: { server: '192.168.7.1', export: '/srv/c2' },
    });
    await (await writeHostKit(out, [remote], join(out, 'secrets'))).commit();
    const showmount = '[ "$*" = "-e --no-headers 192.168.7.1" ] && printf \'/srv/other 10.0.0.9\\n%s %s\\n\' "$EXPORTED" "$CLIENT"';
    const remoteBin = await fakeBin({ ip: IP, ping: 'exit 0', exportfs: EXPORTFS, showmount, docker: DOCKER });
    const env = {
      STATE: await tempDir(),
      SYSFS_NET: sysfs,
      ADDRESS: '10.0.0.1/24',
      DRIVER: 'overlay2',
      BUILDER: 'c2-test',
      EXPORTED: '/srv/c2',
    };
    const listed = runKitScript(join(hostKitDirOf(out), 'doctor.sh'), remoteBin, { ...env, CLIENT: '10.0.0.3,10.0.0.2' });
    expect(listed.status, listed.stdout).toBe(0);
    expect(listed.stdout).toContain('✓ NFS: 192.168.7.1 exports /srv/c2 to 10.0.0.2\n');
    const missing = runKitScript(join(hostKitDirOf(out), 'doctor.sh'), remoteBin, { ...env, CLIENT: '10.0.0.3' });
    expect(missing.status).toBe(1);
    expect(missing.stdout.trim().split('\n').at(-1)).toMatch(/^✗ NFS: 192\.168\.7\.1 does not export \/srv\/c2 to 10\.0\.0\.2; /);
  });
});

const noKitHost = skipWithout(KIT_HOST_NEEDS);

/**
 * doctor.sh as the device meets this host, on a stand-in host (kitHost): a real link, address,
 * ping, listener, exportfs and the firewall zone's nftables rules; only the device's Docker is a
 * stand-in. Each case breaks the NFS link one way; install.sh then mends it.
 */
describe.skipIf(noKitHost)('doctor.sh at the NFS link, on a stand-in host', () => {
  let host: KitHost;
  let kit: string;
  let listener: ChildProcess | undefined;
  const LINK = `enx${MAC.replaceAll(':', '')}`;
  let bin: string;
  let state: string;
  const doctorLines = (path?: string) => {
    const result = host.run(join(kit, 'doctor.sh'), [], { bin, path, env: { STATE: state } });
    return result.stdout.trim().split('\n');
  };

  beforeAll(async () => {
    const out = await tempDir();
    const config = resolveConfig({
      name: 'c2-test',
      usb: { hostMac: MAC, deviceMac: '02:aa:bb:cc:dd:02' },
      nfs: { export: join(out, 'share'), dataImageSize: '1G' },
    });
    await (await writeHostKit(out, [config], join(out, 'secrets'))).commit();
    kit = hostKitDirOf(out);
    host = await kitHost(MAC, '10.0.0.2/24');
    // The address as nat.sh sets it, and firewalld's zone for a shared link.
    const setUp = host.shell(`bash ${kit}/nat.sh && ${withNmSharedZone(LINK)}`);
    expect(setUp.status, setUp.stderr).toBe(0);
    bin = await fakeBin({ docker: DOCKER, 'firewall-cmd': FIREWALL_CMD });
    state = await tempDir();
  });
  afterAll(async () => {
    listener?.kill();
    await host?.remove();
  });

  it('says which link is broken and its fix: no server, the server stopped, no export, the firewall; then all hold after install.sh', async () => {
    const noServer = doctorLines(await fakeBin({ docker: DOCKER }, ['ip', 'ping', 'ss', 'timeout', 'sed', 'awk']));
    expect(noServer.slice(0, 3).every((line) => line.startsWith('✓ '))).toBe(true);
    expect(noServer.at(-1)).toBe(
      '✗ NFS: no NFS server here (nothing listens on port 2049); install nfs-utils (Fedora) or nfs-kernel-server (Debian, Ubuntu), then run sudo ./install.sh',
    );
    // The export loaded (exportfs -v lists it) but no server running: what the device meets is nothing.
    const exportShare = `mkdir -p /etc/exports.d && cp ${kit}/exports /etc/exports.d/c2-test.exports && mkdir -p ${kit}/../share && exportfs -ra`;
    host.shell(exportShare);
    expect(doctorLines().at(-1)).toBe(
      '✗ NFS: the NFS server is not running here (nothing listens on port 2049); start it: sudo systemctl enable --now nfs-server',
    );
    listener = await listenIn(host.namespace, '0.0.0.0', 2049);
    host.shell('rm /etc/exports.d/c2-test.exports && exportfs -ra');
    expect(doctorLines().at(-1)).toMatch(
      /^✗ NFS: this host does not export .*\/share to 10\.0\.0\.2; run sudo \.\/install\.sh, or by hand: /,
    );
    host.shell(exportShare);
    const rule = 'rule family="ipv4" source address="10.0.0.2" port port="2049" protocol="tcp" accept';
    expect(doctorLines().at(-1)).toBe(
      `✗ NFS: firewalld's zone nm-shared (the link's) rejects NFS from 10.0.0.2; open it: sudo ./install.sh, or sudo firewall-cmd --permanent --zone=nm-shared --add-rich-rule='${rule}' && sudo firewall-cmd --zone=nm-shared --add-rich-rule='${rule}'`,
    );
    // The device's side of it: the zone rejects the NFS port from the device.
    expect(host.onDevice(`${TCP_PROBE} 10.0.0.1 2049 10.0.0.2`).stdout.trim()).toBe('EHOSTUNREACH');

    const installBin = await fakeBin({ docker: SETUP_BUILDX_DOCKER, 'firewall-cmd': FIREWALL_CMD });
    const install = host.run(join(kit, 'install.sh'), [], { bin: installBin, env: { STATE: await tempDir() } });
    expect(install.status, install.stderr).toBe(0);
    expect(host.onDevice(`${TCP_PROBE} 10.0.0.1 2049 10.0.0.2`).stdout.trim()).toBe('connected');
    const mended = doctorLines();
    expect(mended.slice(0, 4)).toEqual([
      `✓ USB link to c2-test: ${LINK} (MAC ${MAC})`,
      `✓ address: ${LINK} has 10.0.0.1/24`,
      '✓ ping: c2-test (10.0.0.2) answers',
      expect.stringMatching(/^✓ NFS: 10\.0\.0\.1 exports .*\/share to 10\.0\.0\.2 and listens on port 2049$/),
    ]);
    // The board's Docker is all that is missing: the stand-in refuses, as a device not yet booted does.
    expect(mended[4]).toMatch(/^✗ Docker API: /);
  });
});
