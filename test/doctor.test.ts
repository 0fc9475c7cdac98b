/**
 * host/doctor.sh: the chain from the host to the device checked link by link, run against
 * stand-ins for the system tools (ip, ping, exportfs, showmount, docker) and a stand-in
 * /sys/class/net. Against a booted device it runs in the boot test.
 */
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { resolveConfig } from '../src/config/load.js';
import { hostKitDirOf, writeHostKit } from '../src/host-kit/host-kit.js';
import { fakeBin, runKitScript } from './kit-helpers.js';
import { tempDir } from './support/images.js';

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
  "buildx version") exit 0 ;;
  "buildx inspect") [ "$3" = "\${BUILDER:-}" ] ;;
  --tlsverify*)
    [ -n "\${DRIVER:-}" ] || { echo "error during connect: connection refused" >&2; exit 1; }
    for command; do :; done
    [ "$command" = info ] && printf 'Server:\\n Containers: 0\\n Storage Driver: %s\\n' "$DRIVER"
    exit 0 ;;
  *) echo "unexpected: docker $*" >&2; exit 2 ;;
esac`;

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
  bin = await fakeBin({ ip: IP, ping: '[ -n "${PING:-}" ]', exportfs: EXPORTFS, docker: DOCKER });
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
      `✓ NFS: 10.0.0.1 exports ${CONFIG.nfs.export} to 10.0.0.2`,
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
