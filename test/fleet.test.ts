/*
 * --fleet: the derivation of each board's values (unit tests), then one real fleet build of three
 * boards whose images are read back with the real tools and held against the host kit.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { fleetConfigs, parseFleetSize } from '../src/config/fleet.js';
import { asConfigFile, resolveConfig } from '../src/config/load.js';
import type { BuildConfig } from '../src/config/schema.js';
import { configWithFakeBundle } from './docker-bundle-fixture.js';
import { fakeBin, parseKeyFile, runKitScript, SETUP_BUILDX_DOCKER } from './kit-helpers.js';
import { buildImage, type RunResult } from './support/cli.js';
import { debugfsCat } from './support/debugfs.js';
import { e2fsckClean, fsckFatClean } from './support/fsck.js';
import { AUTHORIZED_KEY, stockImage, tempDir, treeListing } from './support/images.js';
import { dumpPartitions } from './support/mtools.js';

describe('fleet derivation', () => {
  it("gives board k the base's values with -k, the k-th subnet from the base's and a share of its own, the same every time", () => {
    const boards = fleetConfigs(resolveConfig({ name: 'c2' }), 3);
    expect(boards.map((b) => [b.name, b.hostname, b.network.address, b.network.gateway, b.nfs.server, b.nfs.export])).toEqual([
      ['c2-1', 'c2-1', '10.0.0.2/24', '10.0.0.1', '10.0.0.1', '/srv/c2-1'],
      ['c2-2', 'c2-2', '10.0.1.2/24', '10.0.1.1', '10.0.1.1', '/srv/c2-2'],
      ['c2-3', 'c2-3', '10.0.2.2/24', '10.0.2.1', '10.0.2.1', '/srv/c2-3'],
    ]);
    // Each board's MACs are what its name gives any single build: stable, and distinct.
    for (const board of boards) expect(board.usb).toEqual(resolveConfig({ name: board.name }).usb);
    expect(new Set(boards.flatMap((b) => [b.usb.deviceMac, b.usb.hostMac])).size).toBe(6);
    expect(fleetConfigs(resolveConfig({ name: 'c2' }), 3)).toEqual(boards);
  });

  it("moves a custom base's addresses inside its subnet with it and keeps those outside", () => {
    const base = resolveConfig({
      name: 'lab',
      hostname: 'arm',
      power: { profile: 'usb2-0.5A' },
      network: { address: '192.168.7.9/29', gateway: '192.168.7.14', dns: ['192.168.7.14', '9.9.9.9'] },
      nfs: { server: '172.16.5.5', export: '/data/builders' },
    });
    const [, second, third] = fleetConfigs(base, 3);
    expect(third).toMatchObject({
      name: 'lab-3',
      hostname: 'arm-3',
      power: { profile: 'usb2-0.5A' },
      network: { address: '192.168.7.25/29', ip: '192.168.7.25', prefix: 29, gateway: '192.168.7.30', dns: ['192.168.7.30', '9.9.9.9'] },
      nfs: { server: '172.16.5.5', export: '/data/builders-3' },
    });
    expect(second.network.address).toBe('192.168.7.17/29');
  });

  it('refuses what would not give distinct, reachable devices', () => {
    const refusal = (raw: object, size: number) => {
      try {
        fleetConfigs(resolveConfig(raw), size);
      } catch (error) {
        return (error as Error).message;
      }
      return 'accepted';
    };
    expect(refusal({ usb: { hostMac: '02:00:00:00:00:06' } }, 2)).toMatch(
      /^--fleet gives each device its own MAC pair.*remove usb\.deviceMac and usb\.hostMac/,
    );
    // A /8 base has no room for a second /8 inside 10.0.0.0/8: the next one would be public space.
    expect(refusal({ network: { address: '10.0.0.2/8' } }, 2)).toMatch(
      /^--fleet 2 needs 2 \/8 subnets from 10\.0\.0\.0\/8 up.*only 1 fit in 10\.0\.0\.0\/8; use a longer prefix/,
    );
    expect(refusal({ network: { address: '192.168.255.2/24' } }, 2)).toMatch(/only 1 fit in 192\.168\.0\.0\/16/);
    expect(refusal({ network: { address: '192.168.255.2/24' } }, 1)).toBe('accepted');
    // The bound is what the address plan allows, exactly: 192.168.250.0/24 up to 192.168.255.0/24.
    expect(refusal({ network: { address: '192.168.250.2/24' } }, 6)).toBe('accepted');
    expect(refusal({ network: { address: '192.168.250.2/24' } }, 7)).toMatch(
      /^--fleet 7 needs 7 \/24 subnets from 192\.168\.250\.0\/24 up, one per device's USB link, but only 6 fit in 192\.168\.0\.0\/16; /,
    );
    expect(refusal({ nfs: { server: '10.0.2.20' } }, 3)).toMatch(
      /^--fleet 3: device 3's USB link would be 10\.0\.2\.0\/24, which holds 10\.0\.2\.20/,
    );
    expect(refusal({ name: `c${'x'.repeat(61)}` }, 2)).toMatch(
      /^--fleet: device 1 \(cx+-1\), derived from the base config: config key name .* is not a valid name/,
    );
  });

  it('reads --fleet as a whole number of devices', () => {
    expect(parseFleetSize('3')).toBe(3);
    for (const bad of ['0', '-1', '1.5', 'three', '', '03'])
      expect(() => parseFleetSize(bad), bad).toThrow(/^--fleet ".*" is not a number of devices/);
  });
});

/** `key value` lines and `options <module> key=value ...` as a map, from a device's config file. */
function fields(text: string): Record<string, string> {
  const found: Record<string, string> = {};
  for (const line of text.split('\n')) {
    const words = line.trim().split(/\s+/);
    if (words[0] === 'options') for (const pair of words.slice(2)) found[pair.split('=')[0]] = pair.split('=')[1];
    else if (words.length === 2 && !line.startsWith('#')) found[words[0]] = words[1];
  }
  return found;
}

/** What a fleet image says about itself, read with debugfs and openssl. */
interface BoardFacts {
  image: string;
  name: string;
  hostname: string;
  deviceMac: string;
  hostMac: string;
  ip: string;
  netmask: string;
  gateway: string;
  share: string;
  dataImage: string;
  san: string;
  serverCert: string;
}

async function readBoard(image: string, dir: string): Promise<BoardFacts> {
  const gadget = fields(await debugfsCat(image, '/etc/modprobe.d/usb-gadget.conf'));
  const usb0 = fields(await debugfsCat(image, '/etc/network/interfaces.d/usb0'));
  const storage = await debugfsCat(image, '/usr/local/sbin/builder-storage');
  const serverCert = join(dir, 'server-cert.pem');
  await writeFile(serverCert, await debugfsCat(image, '/etc/docker/tls/server-cert.pem'));
  return {
    image,
    name: JSON.parse(await debugfsCat(image, '/etc/odroid-buildx-image.json')).name,
    hostname: (await debugfsCat(image, '/etc/hostname')).trim(),
    deviceMac: gadget.dev_addr,
    hostMac: gadget.host_addr,
    ip: usb0.address,
    netmask: usb0.netmask,
    gateway: usb0.gateway,
    share: shellAssignment(storage, 'NFS_SHARE'),
    dataImage: shellAssignment(storage, 'DATA_IMAGE'),
    san: execFileSync('openssl', ['x509', '-noout', '-ext', 'subjectAltName', '-in', serverCert], { encoding: 'utf8' })
      .split('\n')[1]
      .trim(),
    serverCert,
  };
}

/** What sh makes of the script's assignment to `name`. */
function shellAssignment(script: string, name: string): string {
  const line = new RegExp(`^${name}=.*$`, 'm').exec(script)![0];
  return execFileSync('sh', ['-c', `${line}\nprintf %s "$${name}"`], { encoding: 'utf8' });
}

describe('npm run build-image -- --fleet 3', () => {
  let out: string;
  let kit: string;
  let config: string;
  let run: RunResult;
  let boards: BoardFacts[];

  beforeAll(async () => {
    out = await tempDir();
    kit = join(out, 'host');
    config = await configWithFakeBundle(await tempDir(), { ssh: { authorizedKeys: [AUTHORIZED_KEY] } });
    run = await buildImage(['--input', await stockImage('stock'), '--out', out, '--name', 'fleet', '--config', config, '--fleet', '3']);
    expect(run.stderr).not.toMatch(/internal error/);
    expect(run.code, run.stderr).toBe(0);
    boards = [];
    for (const k of [1, 2, 3]) {
      const dir = join(await tempDir(), `board-${k}`);
      await mkdir(dir);
      boards.push(await readBoard(join(out, `fleet-${k}.img`), dir));
    }
  });

  it('writes fleet-1.img ... fleet-3.img, one host kit and one set of secrets, and no checksum without --checksum', async () => {
    expect((await readdir(out)).sort()).toEqual(['fleet-1.img', 'fleet-2.img', 'fleet-3.img', 'host', 'secrets']);
    expect(run.stdout.match(/^ {2}sha256 {3}not computed: build with --checksum/gm)).toHaveLength(3);
    expect(run.stdout).toMatch(/^ {2}fleet {4}3 devices, one docker buildx builder "fleet"/m);
    // Each board's patch says the fixture has no iptables; the summary says it once.
    expect(run.stdout.match(/^ {2}warning {2}the image has no iptables/gm)).toHaveLength(1);
    // Boards 2 and 3 are copies of board 1's finished image: the ~3.5 MiB bundle is written once.
    expect(run.stderr).toMatch(/copy [\d.]+s \(3 runs\), secrets [\d.]+s \(3 runs\), patch [\d.]+s \(3 runs\)/);
    const written = [...run.stdout.matchAll(/operations, (\d+) bytes written\)/g)].map((match) => Number(match[1]));
    expect(written).toHaveLength(3);
    expect(written[0]).toBeGreaterThan(3_000_000);
    expect(Math.max(written[1], written[2])).toBeLessThan(200_000);
    expect((await readdir(join(out, 'secrets/tls'))).sort()).toEqual([
      'ca',
      'client',
      'server-fleet-1',
      'server-fleet-2',
      'server-fleet-3',
    ]);
  });

  it('gives every board its own name, host name, MAC pair, address, share and data image', () => {
    expect(boards.map((b) => b.name)).toEqual(['fleet-1', 'fleet-2', 'fleet-3']);
    expect(boards.map((b) => b.hostname)).toEqual(['fleet-1', 'fleet-2', 'fleet-3']);
    expect(boards.map((b) => [b.ip, b.netmask, b.gateway])).toEqual([
      ['10.0.0.2', '255.255.255.0', '10.0.0.1'],
      ['10.0.1.2', '255.255.255.0', '10.0.1.1'],
      ['10.0.2.2', '255.255.255.0', '10.0.2.1'],
    ]);
    expect(boards.map((b) => [b.share, b.dataImage])).toEqual([
      ['10.0.0.1:/srv/fleet-1', 'fleet-1.ext4'],
      ['10.0.1.1:/srv/fleet-2', 'fleet-2.ext4'],
      ['10.0.2.1:/srv/fleet-3', 'fleet-3.ext4'],
    ]);
    const macs = boards.flatMap((b) => [b.deviceMac, b.hostMac]);
    expect(macs.every((mac) => /^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/.test(mac))).toBe(true);
    expect(new Set(macs).size).toBe(6);
    for (const key of ['deviceMac', 'hostMac'] as const)
      expect(boards.map((b) => b[key])).toEqual(boards.map((b) => resolveConfig({ name: b.name }).usb[key]));
  });

  it('leaves every image fsck-clean', async () => {
    for (const board of boards) {
      const ext4 = await e2fsckClean(board.image);
      expect(ext4.ok, ext4.output).toBe(true);
      const fat = await fsckFatClean(board.image);
      expect(fat.ok, fat.output).toBe(true);
    }
  });

  it("signs every board's server certificate, for its own address and name, with the one CA of the kit", async () => {
    const ca = join(kit, 'tls/ca.pem');
    for (const board of boards) {
      expect(board.san).toBe(`IP Address:${board.ip}, DNS:${board.hostname}`);
      const verify = spawnSync('openssl', ['verify', '-CAfile', ca, '-verify_ip', board.ip, '-purpose', 'sslserver', board.serverCert], {
        encoding: 'utf8',
      });
      expect(verify.stdout + verify.stderr).toContain(': OK');
      expect(await debugfsCat(board.image, '/etc/docker/tls/ca.pem')).toBe(await readFile(ca, 'utf8'));
    }
  });

  it("has a NetworkManager profile per board, matching the image's host MAC and gateway", async () => {
    expect((await readdir(kit)).filter((file) => file.endsWith('.nmconnection')).sort()).toEqual([
      'fleet-1.nmconnection',
      'fleet-2.nmconnection',
      'fleet-3.nmconnection',
    ]);
    for (const board of boards) {
      const profile = parseKeyFile(await readFile(join(kit, `${board.name}.nmconnection`), 'utf8'));
      expect(profile.ethernet['mac-address']).toBe(board.hostMac);
      expect(profile.ipv4).toEqual({ method: 'shared', address1: `${board.gateway}/24` });
    }
    const uuids = await Promise.all(
      boards.map(async (b) => parseKeyFile(await readFile(join(kit, `${b.name}.nmconnection`), 'utf8')).connection.uuid),
    );
    expect(new Set(uuids).size).toBe(3);
  });

  it("exports each board's share to that board's address only", async () => {
    const lines = (await readFile(join(kit, 'exports'), 'utf8')).split('\n').filter((line) => line && !line.startsWith('#'));
    expect(lines).toEqual(boards.map((b) => `${b.share.split(':')[1]} ${b.ip}(rw,sync,no_subtree_check,no_root_squash)`));
  });

  it('lists every board in the README', async () => {
    const readme = await readFile(join(kit, 'README.md'), 'utf8');
    expect(readme).toMatch(/^# Host kit: fleet$/m);
    for (const board of boards) expect(readme).toContain(`| device \`${board.name}\` | \`${board.ip}\``);
  });

  it("setup-buildx.sh makes one builder with a node per board, each a context for that board's address", async () => {
    const state = await tempDir();
    const result = runKitScript(join(kit, 'setup-buildx.sh'), await fakeBin({ docker: SETUP_BUILDX_DOCKER }), { STATE: state });
    expect(result.stderr).toBe('');
    expect(result.status).toBe(0);
    const calls = (await readFile(join(state, 'log'), 'utf8'))
      .trim()
      .split('\n')
      .filter((call) => /^docker (context create|buildx create)/.test(call));
    const tls = `ca=${kit}/tls/ca.pem,cert=${kit}/tls/cert.pem,key=${kit}/tls/key.pem`;
    expect(calls).toEqual([
      ...boards.map(
        (board) =>
          `docker context create --description odroid-buildx-image device ${board.name} --docker host=tcp://${board.ip}:2376,${tls} ${board.name}`,
      ),
      ...boards.map(
        (board, index) =>
          `docker buildx create --name fleet --node ${board.name} --driver docker-container --platform linux/arm64${index === 0 ? '' : ' --append'} ${board.name}`,
      ),
    ]);
    // A fleet cannot have the docker driver: buildx joins only docker-container nodes.
    expect(result.stdout).toContain('driver docker-container: one builder fleet over 3 devices');
  });

  it("nat.sh gives each attached board's link the host end of its subnet", async () => {
    const sysfs = await tempDir();
    for (const board of boards) {
      await mkdir(join(sysfs, `usb-${board.name}`));
      await writeFile(join(sysfs, `usb-${board.name}`, 'address'), `${board.hostMac}\n`);
    }
    const state = await tempDir();
    const log = 'echo "$(basename "$0") $*" >>"$STATE/log"';
    const result = runKitScript(
      join(kit, 'nat.sh'),
      await fakeBin({ id: 'echo 0', ip: log, sysctl: log, iptables: `${log}; [ "$3" != -C ] || exit 1` }),
      { STATE: state, SYSFS_NET: sysfs },
    );
    expect(result.stderr).toBe('');
    expect(result.status).toBe(0);
    const calls = (await readFile(join(state, 'log'), 'utf8')).split('\n');
    for (const board of boards) {
      expect(calls).toContain(`ip address replace ${board.gateway}/24 dev usb-${board.name}`);
      expect(calls).toContain(
        `iptables -t nat -A POSTROUTING -s ${board.ip} ! -o usb-${board.name} -m comment --comment odroid-buildx-image -j MASQUERADE`,
      );
    }
  });

  it('nat.sh sets up the attached boards when one is unplugged, warning about that one', async () => {
    const [unplugged, ...attached] = boards;
    const sysfs = await tempDir();
    for (const board of attached) {
      await mkdir(join(sysfs, `usb-${board.name}`));
      await writeFile(join(sysfs, `usb-${board.name}`, 'address'), `${board.hostMac}\n`);
    }
    const state = await tempDir();
    const log = 'echo "$(basename "$0") $*" >>"$STATE/log"';
    const result = runKitScript(
      join(kit, 'nat.sh'),
      await fakeBin({ id: 'echo 0', ip: log, sysctl: log, iptables: `${log}; [ "$3" != -C ] || exit 1` }),
      { STATE: state, SYSFS_NET: sysfs },
    );
    expect(result.status).toBe(0);
    expect(result.stderr).toBe(
      `nat.sh: warning: no network interface has MAC ${unplugged.hostMac} (that board is not plugged in or not booted yet); run nat.sh again when it is\n`,
    );
    const calls = (await readFile(join(state, 'log'), 'utf8')).split('\n');
    for (const board of attached) expect(calls).toContain(`ip address replace ${board.gateway}/24 dev usb-${board.name}`);
    expect(calls.filter((call) => call.includes(unplugged.ip))).toEqual([]);
    expect(calls).toContain('sysctl -q -w net.ipv4.ip_forward=1');
  });

  it('patches board 2 exactly as a build of board 2 alone would: nothing of board 1 is left in its copy', async () => {
    const alone = await tempDir();
    // The same secrets, so the same keys and certificates: only the way the image was made differs.
    execFileSync('cp', ['-a', join(out, 'secrets'), alone]);
    const file = join(alone, 'board-2.json');
    const docker = JSON.parse(await readFile(config, 'utf8')).docker;
    const base = resolveConfig({ name: 'fleet', ssh: { authorizedKeys: [AUTHORIZED_KEY] } });
    const second: BuildConfig = fleetConfigs(base, 3)[1];
    await writeFile(file, JSON.stringify({ ...asConfigFile(second), docker }));
    const single = await buildImage(['--input', await stockImage('stock'), '--out', alone, '--config', file]);
    expect(single.code, single.stderr).toBe(0);
    const [fromFleet, fromStock] = [await dumpPartitions(boards[1].image), await dumpPartitions(join(alone, 'fleet-2.img'))];
    execFileSync('diff', ['-r', '--no-dereference', fromStock, fromFleet]);
    expect(await treeListing(fromFleet)).toEqual(await treeListing(fromStock));
  });
});

describe('--fleet on the command line', () => {
  it("--dry-run lists each board's operations under its name and writes nothing", async () => {
    const out = await tempDir();
    const run = await buildImage([
      '--input',
      await stockImage('stock'),
      '--out',
      out,
      '--name',
      'dry',
      '--fleet',
      '2',
      '--dry-run',
      '--config',
      await configWithFakeBundle(await tempDir()),
    ]);
    expect(run.code, run.stderr).toBe(0);
    const sections = run.stdout.split(/^# /m).filter(Boolean);
    expect(sections.map((section) => section.split('\n')[0])).toEqual(['dry-1', 'dry-2']);
    expect(sections[1]).toMatch(/^hostname:\n {2}write {3}rootfs:\/etc\/hostname/m);
    expect(await readdir(out)).toEqual([]);
  });
});
