import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, expectTypeOf, it } from 'vitest';
import { renderConfigDoc } from '../src/config/doc.js';
import { loadConfig, resolveConfig } from '../src/config/load.js';
import {
  type BuildConfig,
  type KeyOverrides,
  type PowerProfile,
  row,
  text,
  type UsbProtocol,
  unsetByDefault,
} from '../src/config/schema.js';
import { UserError } from '../src/errors.js';

const KEY = 'AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl';

/** The UserError message resolveConfig throws for a raw config; fails the test if it does not throw. */
function errorOf(raw: unknown, overrides?: { name?: string }): string {
  try {
    resolveConfig(raw, overrides);
  } catch (error) {
    expect(error).toBeInstanceOf(UserError);
    const message = (error as Error).message;
    expect(message).not.toContain('\n');
    return message;
  }
  throw new Error(`expected ${JSON.stringify(raw)} to be rejected`);
}

function macBits(mac: string) {
  const first = parseInt(mac.slice(0, 2), 16);
  return { unicast: (first & 1) === 0, local: (first & 2) === 2 };
}

describe('BuildConfig', () => {
  it('is made from the schema: each key nested by its path, keys without a default optional, plus ip and prefix', () => {
    // Checked by tsc (npx tsc --noEmit), which includes the tests.
    expectTypeOf<BuildConfig>().toEqualTypeOf<{
      name: string;
      hostname: string;
      board?: 'odroid-c2' | 'odroid-c4' | 'raspberrypi';
      power: { profile: PowerProfile };
      usb: { protocol: UsbProtocol; deviceMac: string; hostMac: string };
      network: { address: string; gateway: string; dns: string[]; ip: string; prefix: number };
      nfs: { server: string; export: string; dataImageSize: string };
      docker: { bundle?: string; sha256?: string };
      ssh: { authorizedKeys: string[] };
    }>();
    expectTypeOf(resolveConfig({})).toEqualTypeOf<BuildConfig>();
  });

  it('needs a default for every key whose type is not unsetByDefault, of that type, and none for the others', () => {
    // Checked by tsc: each @ts-expect-error fails the type check if its line compiles.
    // @ts-expect-error: no default
    row(text, { doc: 'a key' });
    // @ts-expect-error: a default of another type
    row(text, { default: { value: 1 }, doc: 'a key' });
    // @ts-expect-error: a default for a key that stays unset
    row(unsetByDefault(text), { default: { value: 'x' }, doc: 'a key' });
    row(unsetByDefault(text), { doc: 'a key' });
    row(text, { default: { doc: 'derived', derive: (config) => config.name }, doc: 'a key' });
  });

  it('is overridden on the command line by the flags the table declares', () => {
    expectTypeOf<KeyOverrides>().toEqualTypeOf<{ name?: string; board?: string }>();
  });
});

describe('resolveConfig defaults', () => {
  it('fills every key from an empty config', () => {
    const config = resolveConfig({});
    expect(config).toEqual({
      name: 'odroid-c2-builder',
      hostname: 'odroid-c2-builder',
      power: { profile: 'full' },
      usb: { protocol: 'ecm', deviceMac: expect.any(String), hostMac: expect.any(String) },
      network: { address: '10.0.0.2/24', ip: '10.0.0.2', prefix: 24, gateway: '10.0.0.1', dns: ['1.1.1.1'] },
      nfs: { server: '10.0.0.1', export: '/srv/odroid-c2-builder', dataImageSize: '32G' },
      docker: {},
      ssh: { authorizedKeys: [] },
    });
  });

  it('derives a stable, distinct, locally administered unicast MAC pair from the name', () => {
    const a = resolveConfig({}).usb;
    expect(resolveConfig({}).usb).toEqual(a);
    expect(a.deviceMac).toMatch(/^([0-9a-f]{2}:){5}[0-9a-f]{2}$/);
    expect(a.hostMac).toMatch(/^([0-9a-f]{2}:){5}[0-9a-f]{2}$/);
    expect(a.deviceMac).not.toBe(a.hostMac);
    for (const mac of [a.deviceMac, a.hostMac]) expect(macBits(mac)).toEqual({ unicast: true, local: true });

    const b = resolveConfig({ name: 'other' }).usb;
    expect(b.deviceMac).not.toBe(a.deviceMac);
    expect(b.hostMac).not.toBe(a.hostMac);
    for (const mac of [b.deviceMac, b.hostMac]) expect(macBits(mac)).toEqual({ unicast: true, local: true });
  });

  it('derives hostname, MACs and export from --name, which beats the file', () => {
    const fromFile = resolveConfig({ name: 'c2-builder' });
    const fromFlag = resolveConfig({ name: 'ignored' }, { name: 'c2-builder' });
    expect(fromFlag).toEqual(fromFile);
    expect(fromFlag).toMatchObject({ name: 'c2-builder', hostname: 'c2-builder', nfs: { export: '/srv/c2-builder' } });
  });

  it('keeps explicit values over derived defaults', () => {
    const config = resolveConfig(
      { hostname: 'box', nfs: { export: '/data/c2' }, usb: { deviceMac: '02:00:00:00:00:01' } },
      { name: 'c2-builder' },
    );
    expect(config.hostname).toBe('box');
    expect(config.nfs.export).toBe('/data/c2');
    expect(config.usb.deviceMac).toBe('02:00:00:00:00:01');
  });

  it('puts the default gateway and NFS server on the device subnet', () => {
    expect(resolveConfig({ network: { address: '192.168.7.2/24' } }).network.gateway).toBe('192.168.7.1');
    const first = resolveConfig({ network: { address: '192.168.7.1/24' } });
    expect(first.network).toMatchObject({ ip: '192.168.7.1', prefix: 24, gateway: '192.168.7.2' });
    expect(first.nfs.server).toBe('192.168.7.2');
  });
});

describe('resolveConfig normalizes', () => {
  it('MACs to lower-case colon form', () => {
    const usb = resolveConfig({ usb: { deviceMac: '0A-BC-DE-F0-12-34', hostMac: '06:AA:BB:CC:DD:EE' } }).usb;
    expect(usb).toMatchObject({ deviceMac: '0a:bc:de:f0:12:34', hostMac: '06:aa:bb:cc:dd:ee' });
  });

  it('sha256 to lower case and keys without trailing newline', () => {
    const config = resolveConfig({
      docker: { bundle: 'https://download.docker.com/linux/static/stable/aarch64/docker-27.3.1.tgz', sha256: 'AB'.repeat(32) },
      ssh: { authorizedKeys: [`ssh-ed25519 ${KEY} me@laptop\n`] },
    });
    expect(config.docker.sha256).toBe('ab'.repeat(32));
    expect(config.ssh.authorizedKeys).toEqual([`ssh-ed25519 ${KEY} me@laptop`]);
  });

  it('prefixes /8 to /30, and an NFS server beyond the gateway', () => {
    expect(resolveConfig({ network: { address: '10.0.0.2/8' } }).network.prefix).toBe(8);
    expect(resolveConfig({ network: { address: '10.0.0.2/30' } }).network.gateway).toBe('10.0.0.1');
    expect(resolveConfig({ nfs: { server: '192.168.1.10' } }).nfs.server).toBe('192.168.1.10');
  });

  // Every key type: test/config-public-keys.test.ts.
  it('accepts every protocol and power profile the schema names', () => {
    for (const protocol of ['ecm', 'eem', 'ncm']) expect(resolveConfig({ usb: { protocol } }).usb.protocol).toBe(protocol);
    for (const profile of ['usb2-0.5A', 'usb3-0.9A', 'full']) expect(resolveConfig({ power: { profile } }).power.profile).toBe(profile);
    expect(resolveConfig({ docker: { bundle: './docker-27.3.1.tgz' } }).docker.bundle).toBe('./docker-27.3.1.tgz');
  });
});

describe('resolveConfig rejects', () => {
  it.each([
    [{ name: 'My Builder' }, /^config key name "My Builder" is not a valid name/],
    [{ name: 'c2-' }, /^config key name "c2-"/],
    [{ name: 'a'.repeat(64) }, /^config key name /],
    [{ name: '../x' }, /^config key name /],
    [{ hostname: 'box.local' }, /^config key hostname "box.local" is not a valid host name/],
    [{ usb: { protocol: 'rndis' } }, /^config key usb.protocol must be one of "ecm" \| "eem" \| "ncm", got "rndis"/],
    [{ power: { profile: 'usb2' } }, /^config key power.profile must be one of "usb2-0.5A" \| "usb3-0.9A" \| "full", got "usb2"/],
    [{ power: { profile: 'USB2-0.5A' } }, /^config key power.profile must be one of .*, got "USB2-0.5A"/],
    [{ power: 'full' }, /^config key power must be an object with keys profile, got "full"/],
    [{ usb: { deviceMac: '02:00:00:00:00' } }, /^config key usb.deviceMac "02:00:00:00:00" is not a MAC address/],
    [{ usb: { deviceMac: '02:00-00:00:00:00' } }, /^config key usb.deviceMac .* is not a MAC address/],
    [{ usb: { deviceMac: '03:00:00:00:00:01' } }, /^config key usb.deviceMac "03:00:00:00:00:01" is a multicast MAC/],
    [{ usb: { hostMac: '00:11:22:33:44:55' } }, /^config key usb.hostMac "00:11:22:33:44:55" is not locally administered/],
    [{ usb: { deviceMac: '02:00:00:00:00:01', hostMac: '02:00:00:00:00:01' } }, /^config key usb.hostMac .* equals usb.deviceMac/],
    [{ network: { address: '10.0.0.2' } }, /^config key network.address "10.0.0.2" is not IPv4 CIDR/],
    [{ network: { address: '10.0.0.256/24' } }, /^config key network.address .* is not IPv4 CIDR/],
    [{ network: { address: '10.0.0.02/24' } }, /^config key network.address .* is not IPv4 CIDR/],
    [{ network: { address: '10.0.0.2/31' } }, /^config key network.address .* prefix length outside 8-30/],
    [{ network: { address: '10.0.0.2/1' } }, /^config key network.address "10.0.0.2\/1" has a prefix length outside 8-30; use e.g. \/24$/],
    [{ network: { address: '10.0.0.2/7' } }, /^config key network.address .* prefix length outside 8-30/],
    [
      { network: { address: '127.0.0.2/24' } },
      /^config key network.address "127.0.0.2\/24" is a loopback address \(127.0.0.0\/8\), .*; pick a private address like 10.0.0.2\/24$/,
    ],
    [{ network: { address: '0.0.0.2/24' } }, /^config key network.address .* is in 0.0.0.0\/8, /],
    [{ network: { address: '224.0.0.2/24' } }, /^config key network.address .* is a multicast address \(224.0.0.0\/4\); pick /],
    [{ network: { address: '239.1.1.2/24' } }, /^config key network.address .* is a multicast address/],
    [{ network: { address: '240.0.0.2/24' } }, /^config key network.address .* is in the reserved 240.0.0.0\/4/],
    [{ network: { address: '255.255.255.254/24' } }, /^config key network.address .* is in the reserved 240.0.0.0\/4/],
    [
      { nfs: { server: '0.0.0.0' } },
      /^config key nfs.server "0.0.0.0" is in 0.0.0.0\/8, .*; use the NFS server's address, usually the host's on the USB link \(network.gateway\)$/,
    ],
    [
      { nfs: { server: '255.255.255.255' } },
      /^config key nfs.server "255.255.255.255" is in the reserved 240.0.0.0\/4 or the broadcast 255.255.255.255; use /,
    ],
    [{ nfs: { server: '127.0.0.1' } }, /^config key nfs.server "127.0.0.1" is a loopback address/],
    [{ nfs: { server: '224.0.0.1' } }, /^config key nfs.server "224.0.0.1" is a multicast address/],
    [{ nfs: { server: '10.0.0.2' } }, /^config key nfs.server "10.0.0.2" equals the device's own network.address; use /],
    [{ nfs: { server: '10.0.0.255' } }, /^config key nfs.server "10.0.0.255" is the broadcast address of 10.0.0.2\/24; use /],
    [{ nfs: { server: '10.0.0.0' } }, /^config key nfs.server "10.0.0.0" is the network address of 10.0.0.2\/24; use /],
    [{ network: { address: '127.0.0.2/8', gateway: '127.0.0.1' } }, /^config key network.address .* loopback/],
    [{ network: { address: '10.0.0.0/24' } }, /^config key network.address .* is the network address/],
    [{ network: { address: '10.0.0.255/24' } }, /^config key network.address .* is the broadcast address/],
    [{ network: { gateway: '10.0.1.1' } }, /^config key network.gateway "10.0.1.1" is outside the subnet of network.address 10.0.0.2\/24/],
    [{ network: { gateway: '10.0.0.2' } }, /^config key network.gateway "10.0.0.2" equals the device's own network.address/],
    [{ network: { gateway: '10.0.0.255' } }, /^config key network.gateway .* is the broadcast address/],
    [{ network: { gateway: 'router' } }, /^config key network.gateway "router" is not an IPv4 address/],
    [{ network: { dns: '1.1.1.1' } }, /^config key network.dns must be an array of strings, got "1.1.1.1"/],
    [{ network: { dns: [] } }, /^config key network.dns \[\] is empty/],
    [{ network: { dns: ['1.1.1.1', 'dns.google'] } }, /^config key network.dns\[1\] "dns.google" is not an IPv4 address/],
    [{ nfs: { server: 'host.local' } }, /^config key nfs.server "host.local" is not an IPv4 address/],
    [{ nfs: { export: 'srv/c2' } }, /^config key nfs.export "srv\/c2" is not an absolute path/],
    [{ nfs: { export: '/srv/../etc' } }, /^config key nfs.export .* contains a \. or \.\. segment/],
    [{ nfs: { export: '/srv/my c2' } }, /^config key nfs.export .* is not a plain path/],
    [{ nfs: { export: "/srv/a'$(touch${IFS}/tmp/x)'b" } }, /^config key nfs.export .* is not a plain path; use \/-separated names/],
    [{ nfs: { export: '/srv/`id`' } }, /^config key nfs.export .* is not a plain path/],
    [{ nfs: { export: '/srv/c2/' } }, /^config key nfs.export .* is not a plain path/],
    ...['/etc', '/home', '/root', '/usr', '/boot', '/var/lib', '/var', '/srv'].map((dir): [object, RegExp] => [
      { nfs: { export: dir } },
      new RegExp(
        `^config key nfs.export "${dir}" is the system directory ${dir}, which the host would export read-write with no_root_squash`,
      ),
    ]),
    [{ nfs: { export: '/etc/c2' } }, /^config key nfs.export "\/etc\/c2" is inside the system directory \/etc, /],
    [{ nfs: { export: '/proc/self' } }, /^config key nfs.export .* is inside the system directory \/proc/],
    [{ nfs: { export: `/srv/${'a'.repeat(256)}` } }, /^config key nfs.export .* has a name longer than 255 bytes/],
    [{ docker: { bundle: 'ftp://example.com/docker.tgz' } }, /^config key docker.bundle .* is not an http\(s\) URL/],
    [{ docker: { bundle: '' } }, /^config key docker.bundle "" is not a URL or a path/],
    [{ docker: { bundle: null } }, /^config key docker.bundle must be a string, got null/],
    [{ docker: { bundle: 'docker.tgz', sha256: 'abc' } }, /^config key docker.sha256 "abc" is not a SHA-256 digest/],
    [{ docker: { sha256: 'a'.repeat(64) } }, /^config key docker.sha256 .* is set but docker.bundle is not/],
    [
      { ssh: { authorizedKeys: ['-----BEGIN OPENSSH PRIVATE KEY-----'] } },
      /^config key ssh.authorizedKeys\[0\] .* does not look like an OpenSSH public key/,
    ],
    [{ ssh: { authorizedKeys: [`ssh-ed25519 ${KEY}\nssh-ed25519 ${KEY}`] } }, /^config key ssh.authorizedKeys\[0\] /],
    [
      { ssh: { authorizedKeys: [`ssh-ed25519 ${KEY} me\x1b[2J`] } },
      /^config key ssh.authorizedKeys\[0\] .* does not look like an OpenSSH public key/,
    ],
    [{ docker: { bundle: '/tmp/docker\x1b[2J.tgz' } }, /^config key docker.bundle .* is not a URL or a path/],
    [{ ssh: { authorizedKeys: [42] } }, /^config key ssh.authorizedKeys must be an array of strings, got \[42\]/],
    [{ name: 7 }, /^config key name must be a string, got 7/],
  ])('%j', (raw, message) => {
    expect(errorOf(raw)).toMatch(message);
  });

  it('a bad --name, naming the flag', () => {
    expect(errorOf({}, { name: 'Bad Name' })).toMatch(/^--name "Bad Name" is not a valid name/);
  });

  it('unknown keys at the top level, listing the known ones', () => {
    expect(errorOf({ nmae: 'x' })).toBe(
      'unknown config key nmae; known top-level keys: name, hostname, board, power, usb, network, nfs, docker, ssh',
    );
  });

  it('unknown keys in a group, with the full dotted name', () => {
    expect(errorOf({ usb: { mac: '02:00:00:00:00:01' } })).toBe(
      'unknown config key usb.mac; known keys under usb: protocol, deviceMac, hostMac',
    );
  });

  it('a group that is not an object', () => {
    expect(errorOf({ usb: 'ecm' })).toBe('config key usb must be an object with keys protocol, deviceMac, hostMac, got "ecm"');
    expect(errorOf({ ssh: ['ssh-ed25519 AAAA'] })).toMatch(/^config key ssh must be an object/);
  });

  it('a config that is not an object', () => {
    expect(errorOf([])).toMatch(/^the config must be a JSON object/);
    expect(errorOf(null)).toMatch(/^the config must be a JSON object/);
  });

  it('long values, shortened in the message', () => {
    expect(errorOf({ ssh: { authorizedKeys: [`ssh-foo ${KEY}${KEY}`] } }).length).toBeLessThan(250);
  });
});

describe('loadConfig', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'config-test-'));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  async function loadError(file: string, overrides?: KeyOverrides): Promise<string> {
    const error = await loadConfig(file, overrides).then(
      () => undefined,
      (caught: unknown) => caught,
    );
    expect(error).toBeInstanceOf(UserError);
    const message = (error as Error).message;
    expect(message).not.toContain('\n');
    return message;
  }

  it('uses every default without a file, and honours --name', async () => {
    expect(await loadConfig(undefined)).toEqual(resolveConfig({}));
    expect((await loadConfig(undefined, { name: 'c2' })).hostname).toBe('c2');
  });

  it('reads a file, with or without a byte-order mark', async () => {
    const file = join(dir, 'ok.json');
    await writeFile(file, '\uFEFF{ "name": "c2-builder", "usb": { "protocol": "ncm" } }\n');
    const config = await loadConfig(file, { name: 'override' });
    expect(config).toMatchObject({ name: 'override', usb: { protocol: 'ncm' } });
  });

  it('a bad --name names the flag, not the config file it did not come from', async () => {
    const file = join(dir, 'named.json');
    await writeFile(file, '{ "name": "c2-builder" }\n');
    expect(await loadError(file, { name: 'Bad Name' })).toMatch(/^--name "Bad Name" is not a valid name; /);
    await writeFile(file, '{ "name": "Bad Name" }\n');
    expect(await loadError(file)).toMatch(new RegExp(`^${file}: config key name "Bad Name" is not a valid name; `));
  });

  it('a --board that is none of the boards names the flag, not the config file', async () => {
    const file = join(dir, 'board.json');
    await writeFile(file, '{}\n');
    expect(await loadError(file, { board: 'nope' })).toMatch(/^--board must be one of "odroid-c2" \| /);
  });

  it('names a missing file', async () => {
    const file = join(dir, 'missing.json');
    expect(await loadError(file)).toBe(`config file ${file} does not exist; check the --config path`);
  });

  it('names an unreadable path', async () => {
    expect(await loadError(dir)).toMatch(/^cannot read config file .* \(EISDIR\)/);
  });

  it('names the file, line and column of bad JSON', async () => {
    const file = join(dir, 'bad.json');
    await writeFile(file, '{\n  "name": "c2",\n  "usb": { "protocol": "ecm", }\n}\n');
    expect(await loadError(file)).toMatch(new RegExp(`^config file ${file} is not valid JSON at line 3, column 31: `));
  });

  it('names the file for a truncated or empty file', async () => {
    const file = join(dir, 'empty.json');
    await writeFile(file, '');
    expect(await loadError(file)).toBe(
      `config file ${file} is not valid JSON at line 1, column 1: Unexpected end of JSON input; fix the syntax there`,
    );
  });

  it('keeps bad JSON messages on one line even when V8 quotes the source', async () => {
    const file = join(dir, 'token.json');
    await writeFile(file, '{\n"a": tru}\n');
    expect(await loadError(file)).toMatch(/^config file .* is not valid JSON/);
  });

  it('prefixes schema errors with the file name', async () => {
    const file = join(dir, 'unknown.json');
    await writeFile(file, '{ "usb": { "mac": "02:00:00:00:00:01" } }');
    expect(await loadError(file)).toBe(`${file}: unknown config key usb.mac; known keys under usb: protocol, deviceMac, hostMac`);
  });
});

describe('renderConfigDoc', () => {
  it('is what docs/config.md holds (update with vitest -u)', async () => {
    await expect(renderConfigDoc()).toMatchFileSnapshot('../docs/config.md');
  });

  it('has one table row per key, in resolution order', () => {
    const rows = renderConfigDoc()
      .split('\n')
      .filter((line) => /^\| `/.test(line));
    expect(rows.map((row) => row.split('`')[1])).toEqual([
      'name',
      'hostname',
      'board',
      'power.profile',
      'usb.protocol',
      'usb.deviceMac',
      'usb.hostMac',
      'network.address',
      'network.gateway',
      'network.dns',
      'nfs.server',
      'nfs.export',
      'nfs.dataImageSize',
      'docker.bundle',
      'docker.sha256',
      'ssh.authorizedKeys',
    ]);
  });
});
