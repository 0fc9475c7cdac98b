import { execFileSync, spawnSync } from 'node:child_process';
import { mkdir, readdir, readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { resolveConfig } from '../src/config/load.js';
import type { BuildConfig } from '../src/config/schema.js';
import { C2_HARDWARE, deviceView, hostKitDirOf, type KitFile, renderKitTemplates, writeHostKit } from '../src/host-kit/host-kit.js';
import { BASH, fakeBin, keyMatchesCertificate, parseKeyFile, runKitScript, SETUP_BUILDX_DOCKER } from './kit-helpers.js';
import { skipWithout, tempDir } from './support/images.js';

const CONFIG = resolveConfig({ name: 'c2-test', usb: { hostMac: '02:aa:bb:cc:dd:06', deviceMac: '02:aa:bb:cc:dd:02' } });

/** libnm through GObject introspection: NetworkManager's keyfile reader, without the daemon. */
const LIBNM_IMPORT = "import gi, json, sys; gi.require_version('NM', '1.0'); from gi.repository import NM, GLib";
const LIBNM = spawnSync('/usr/bin/python3', ['-c', LIBNM_IMPORT]);
/** Reads the keyfile argv[1] as NetworkManager does (nm_keyfile_read), checks it (verify), prints what it means. */
const READ_KEYFILE = `${LIBNM_IMPORT}
keyfile = GLib.KeyFile.new()
keyfile.load_from_file(sys.argv[1], GLib.KeyFileFlags.NONE)
profile = NM.keyfile_read(keyfile, '/', NM.KeyfileHandlerFlags.NONE, None, None)
profile.normalize()
profile.verify()
ip4 = profile.get_setting_ip4_config()
address = ip4.get_address(0)
print(json.dumps({'id': profile.get_id(), 'type': profile.get_connection_type(),
  'mac': profile.get_setting_wired().get_mac_address(), 'method': ip4.get_method(),
  'address': f'{address.get_address()}/{address.get_prefix()}', 'ipv6': profile.get_setting_ip6_config().get_method(),
  'autoconnect': profile.get_setting_connection().get_autoconnect()}))`;

const modeOf = async (path: string) => (await stat(path)).mode & 0o777;

async function writeKit(out: string, secrets: string, boards: BuildConfig[] = [CONFIG]): Promise<string> {
  const kit = await writeHostKit(out, boards, secrets);
  await kit.commit();
  await kit.settle();
  return hostKitDirOf(out);
}

let out: string;
let secrets: string;
let kit: string;
beforeAll(async () => {
  out = await tempDir();
  secrets = join(out, 'secrets');
  kit = await writeKit(out, secrets);
});

const noLibnm = skipWithout({ "NetworkManager's libnm for Python (gir1.2-nm-1.0, python3-gi)": LIBNM.status === 0 });

describe('host kit: files', () => {
  it('holds exactly the kit, scripts 0755, private keys and the NM profile 0600, the rest 0644', async () => {
    const expected: Record<string, number> = {
      '.': 0o755,
      'c2-test.nmconnection': 0o600,
      'nat.sh': 0o755,
      exports: 0o644,
      known_hosts: 0o644,
      'setup-buildx.sh': 0o755,
      'install.sh': 0o755,
      'doctor.sh': 0o755,
      'bench-buildx.sh': 0o755,
      bench: 0o755,
      'bench/Dockerfile': 0o644,
      'bench/Makefile': 0o644,
      'bench/bench.c': 0o644,
      'README.md': 0o644,
      '.written-by-odroid-buildx-image': 0o644,
      tls: 0o700,
      'tls/ca.pem': 0o644,
      'tls/cert.pem': 0o644,
      'tls/key.pem': 0o600,
    };
    const found = (await readdir(kit, { recursive: true })).sort();
    expect(found).toEqual(
      Object.keys(expected)
        .filter((path) => path !== '.')
        .sort(),
    );
    for (const [path, mode] of Object.entries(expected)) expect((await modeOf(join(kit, path))).toString(8), path).toBe(mode.toString(8));
  });

  it('writes a NetworkManager keyfile that matches the gadget by the host MAC and shares the connection', async () => {
    const profile = parseKeyFile(await readFile(join(kit, 'c2-test.nmconnection'), 'utf8'));
    expect(profile.connection).toMatchObject({ id: 'c2-test', type: 'ethernet', autoconnect: 'true' });
    expect(profile.connection.uuid).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-8[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    // No interface-name: the MAC alone picks the interface, whatever the kernel called it.
    expect(profile.connection['interface-name']).toBeUndefined();
    expect(profile.ethernet['mac-address']).toBe(CONFIG.usb.hostMac);
    expect(profile.ipv4).toEqual({ method: 'shared', address1: `${CONFIG.network.gateway}/${CONFIG.network.prefix}` });
    expect(profile.ipv4.address1).toBe('10.0.0.1/24');
  });

  it.skipIf(noLibnm)("is a profile NetworkManager's own keyfile reader (libnm) accepts as meant", () => {
    const read = spawnSync('/usr/bin/python3', ['-c', READ_KEYFILE, join(kit, 'c2-test.nmconnection')], { encoding: 'utf8' });
    expect(read.stderr).toBe('');
    expect(JSON.parse(read.stdout)).toEqual({
      id: 'c2-test',
      type: '802-3-ethernet',
      mac: '02:AA:BB:CC:DD:06',
      method: 'shared',
      address: '10.0.0.1/24',
      ipv6: 'ignore',
      autoconnect: true,
    });
  });

  it('keeps the profile UUID across rebuilds and gives another device another one', async () => {
    const again = await writeKit(await tempDir(), secrets);
    const other = await writeKit(await tempDir(), join(await tempDir(), 'secrets'), [resolveConfig({ name: 'c2-other' })]);
    const uuid = async (file: string) => parseKeyFile(await readFile(file, 'utf8')).connection.uuid;
    expect(await uuid(join(again, 'c2-test.nmconnection'))).toBe(await uuid(join(kit, 'c2-test.nmconnection')));
    expect(await uuid(join(other, 'c2-other.nmconnection'))).not.toBe(await uuid(join(kit, 'c2-test.nmconnection')));
  });

  it('exports the share to the device address only, with the options the storage needs', async () => {
    const lines = (await readFile(join(kit, 'exports'), 'utf8')).split('\n').filter((line) => line && !line.startsWith('#'));
    expect(lines).toEqual(['/srv/c2-test 10.0.0.2(rw,sync,no_subtree_check,no_root_squash)']);
    expect(lines.join('\n')).not.toMatch(/\*/);
    expect(await readFile(join(kit, 'exports'), 'utf8')).toMatch(/^# +sudo mkdir -p \/srv\/c2-test$/m);
  });

  it('lists the SSH host keys in known_hosts, as ssh-keygen finds them', async () => {
    const found = execFileSync('ssh-keygen', ['-F', '10.0.0.2', '-f', join(kit, 'known_hosts')], { encoding: 'utf8' });
    for (const type of ['ed25519', 'ecdsa', 'rsa']) {
      const publicKey = (await readFile(join(secrets, 'ssh', `ssh_host_${type}_key.pub`), 'utf8')).split(' ').slice(0, 2).join(' ');
      expect(found).toContain(publicKey);
    }
    expect(spawnSync('ssh-keygen', ['-F', 'c2-test', '-f', join(kit, 'known_hosts')]).status).toBe(0);
  });

  it('carries the client side of mutual TLS: the CA of the secrets, a client certificate it verifies, its key', async () => {
    expect(await readFile(join(kit, 'tls/ca.pem'), 'utf8')).toBe(await readFile(join(secrets, 'tls/ca/cert.pem'), 'utf8'));
    const verify = spawnSync(
      'openssl',
      ['verify', '-CAfile', join(kit, 'tls/ca.pem'), '-purpose', 'sslclient', join(kit, 'tls/cert.pem')],
      { encoding: 'utf8' },
    );
    expect(verify.stdout).toContain(': OK');
    expect(keyMatchesCertificate(join(kit, 'tls/key.pem'), join(kit, 'tls/cert.pem'))).toBe(true);
  });

  it('writes scripts that pass bash -n and shellcheck', () => {
    for (const script of ['nat.sh', 'setup-buildx.sh', 'install.sh', 'doctor.sh', 'bench-buildx.sh']) {
      const syntax = spawnSync('bash', ['-n', join(kit, script)], { encoding: 'utf8' });
      expect(syntax.stderr, script).toBe('');
      expect(syntax.status, script).toBe(0);
      const check = spawnSync('shellcheck', [join(kit, script)], { encoding: 'utf8' });
      expect(check.error).toBeUndefined();
      expect(check.stdout + check.stderr, script).toBe('');
      expect(check.status, script).toBe(0);
    }
  });
});

describe('host kit: README', () => {
  it('leads with the one command that sets this computer up', async () => {
    const readme = await readFile(join(kit, 'README.md'), 'utf8');
    const firstBlock = /```sh\n([^`]*)```/.exec(readme)?.[1] ?? '';
    expect(firstBlock.split('\n')[0]).toMatch(/^sudo \.\/install\.sh /);
    expect(readme.indexOf('sudo ./install.sh')).toBeLessThan(readme.indexOf('## 1.'));
  });

  it("says loudly, where the cable is plugged in, that power.profile full resets on a laptop's port", async () => {
    const readmeOf = async (profile: string) =>
      (await renderKitTemplates([deviceView({ ...CONFIG, power: { ...CONFIG.power, profile } } as typeof CONFIG, [])], 'c2-test')).find(
        (file) => file.path === 'README.md',
      )?.content ?? '';
    const full = await readmeOf('full');
    expect(full).toMatch(/\*\*Power: c2-test was built with `power.profile` `full`\*\*/);
    expect(full).toContain('it can reset in\nthe middle of a build');
    expect(full.indexOf('**Power:')).toBeLessThan(full.indexOf('## 2. Network'));
    expect(await readmeOf('usb2-0.5A')).not.toContain('**Power:');
  });
});

describe('host kit: the data image', () => {
  /** The words install.sh has for its devices, as bash reads them. */
  const installBoards = (script: string) =>
    spawnSync(BASH, ['--norc', '-c', `eval "$(sed -n '/^boards=(/,/^)/p')"; printf '<%s>' "\${boards[@]}"`], {
      input: script,
      encoding: 'utf8',
    }).stdout;

  it('is btrfs made by the host, sized by nfs.dataImageSize, for a kernel without the mainline overlay; else left to the device', async () => {
    const sized = { ...CONFIG, nfs: { ...CONFIG.nfs, dataImageSize: '64G' } };
    const file = async (files: KitFile[], path: string) => files.find((kitFile) => kitFile.path === path)?.content ?? '';
    const stock = await renderKitTemplates([deviceView(sized, [])], 'c2-test');
    expect(installBoards(await file(stock, 'install.sh'))).toBe(
      '<c2-test><10.0.0.2><02:aa:bb:cc:dd:06><10.0.0.1><10.0.0.1></srv/c2-test><c2-test.btrfs><64G><rule family="ipv4" source address="10.0.0.2" port port="2049" protocol="tcp" accept>',
    );
    expect(await file(stock, 'README.md')).toContain('sudo truncate -s 64G /srv/c2-test/c2-test.btrfs');
    const mainline = await renderKitTemplates([deviceView(sized, [], { ...C2_HARDWARE, mainlineOverlay: true })], 'c2-test');
    expect(installBoards(await file(mainline, 'install.sh'))).toBe(
      '<c2-test><10.0.0.2><02:aa:bb:cc:dd:06><10.0.0.1><10.0.0.1></srv/c2-test><><64G><rule family="ipv4" source address="10.0.0.2" port port="2049" protocol="tcp" accept>',
    );
    expect(await file(mainline, 'README.md')).not.toContain('mkfs.btrfs');
  });
});

describe('host kit: scripts', () => {
  it('say what they do with --help, and do nothing else', async () => {
    const state = await tempDir();
    // Every command but the shell's own logs its call: --help must need none of them.
    const bin = await fakeBin(
      Object.fromEntries(
        ['id', 'ip', 'iptables', 'docker', 'exportfs', 'sysctl'].map((tool) => [tool, `echo "${tool} $*" >>"$STATE/log"`]),
      ),
      ['sed'],
    );
    for (const script of ['nat.sh', 'install.sh', 'doctor.sh', 'bench-buildx.sh']) {
      const help = runKitScript(join(kit, script), bin, { STATE: state }, ['--help']);
      expect(help.status, script).toBe(0);
      expect(help.stdout, script).toMatch(/^(usage: |[A-Z])/);
      expect(help.stdout, script).toContain('docs/host-kit.md');
    }
    expect(spawnSync('test', ['-e', join(state, 'log')]).status).toBe(1);
  });
});

describe('host kit: replaced whole', () => {
  it('replaces the previous kit, leaving no stale file and no temp directory', async () => {
    const dir = await tempDir();
    const first = await writeKit(dir, join(dir, 'secrets'));
    await writeFile(join(first, 'stale'), 'from an older kit\n');
    await writeKit(dir, join(dir, 'secrets'));
    expect(await readdir(join(dir, 'host'))).not.toContain('stale');
    expect((await readdir(dir)).sort()).toEqual(['host', 'secrets']);
  });

  it('leaves the old kit untouched when writing the new one fails', async () => {
    const dir = await tempDir();
    const host = await writeKit(dir, join(dir, 'secrets'));
    const before = await readFile(join(host, 'README.md'), 'utf8');
    await writeFile(join(dir, 'secrets/tls/client/key.pem'), 'broken\n');
    await expect(writeHostKit(dir, [CONFIG], join(dir, 'secrets'))).rejects.toThrow(/client\/key\.pem/);
    expect(await readFile(join(host, 'README.md'), 'utf8')).toBe(before);
    expect((await readdir(dir)).sort()).toEqual(['host', 'secrets']);
  });
});

// --- the scripts, run against stand-ins for the system tools --------------------------------

describe('nat.sh', () => {
  let sysfs: string;
  let log: string;
  beforeAll(async () => {
    sysfs = await tempDir();
    // The kernel writes MACs in lower case; an upper-case one checks the comparison anyway.
    for (const [name, mac] of [
      ['wlan0', '3c:22:fb:00:00:01'],
      ['enx02aabbccdd06', '02:AA:BB:CC:DD:06'],
      ['lo', '00:00:00:00:00:00'],
    ]) {
      await mkdir(join(sysfs, name));
      await writeFile(join(sysfs, name, 'address'), `${mac}\n`);
    }
  });

  /** iptables that keeps its rules in a file: -C looks there, -A/-I add. */
  const IPTABLES = `
rules=$STATE/rules; : >>"$rules"
echo "iptables $*" >>"$STATE/log"
table=$2 op=$3 chain=$4; shift 4
[ "$op" = -I ] && shift
line="$table $chain $*"
case $op in
  -C) grep -qxF -- "$line" "$rules" ;;
  -A|-I) echo "$line" >>"$rules" ;;
esac`;
  const COMMON = { id: 'echo 0', ip: 'echo "ip $*" >>"$STATE/log"', sysctl: 'echo "sysctl $*" >>"$STATE/log"' };

  it('with iptables: sets the address on the interface with the host MAC and adds each rule once, however often it runs', async () => {
    const state = await tempDir();
    log = join(state, 'log');
    const bin = await fakeBin({ ...COMMON, iptables: IPTABLES });
    for (let run = 0; run < 2; run += 1) {
      const result = runKitScript(join(kit, 'nat.sh'), bin, { STATE: state, SYSFS_NET: sysfs });
      expect(result.stderr).toBe('');
      expect(result.status).toBe(0);
      expect(result.stdout).toContain('enx02aabbccdd06 has 10.0.0.1/24');
    }
    const rules = (await readFile(join(state, 'rules'), 'utf8')).trim().split('\n');
    expect(rules).toEqual([
      'nat POSTROUTING -s 10.0.0.2 ! -o enx02aabbccdd06 -m comment --comment odroid-buildx-image -j MASQUERADE',
      'filter FORWARD -i enx02aabbccdd06 -s 10.0.0.2 -m comment --comment odroid-buildx-image -j ACCEPT',
      'filter FORWARD -o enx02aabbccdd06 -d 10.0.0.2 -m conntrack --ctstate RELATED,ESTABLISHED -m comment --comment odroid-buildx-image -j ACCEPT',
    ]);
    const calls = (await readFile(log, 'utf8')).trim().split('\n');
    expect(calls.filter((call) => call.startsWith('ip '))).toEqual([
      'ip link set dev enx02aabbccdd06 up',
      'ip address replace 10.0.0.1/24 dev enx02aabbccdd06',
      'ip link set dev enx02aabbccdd06 up',
      'ip address replace 10.0.0.1/24 dev enx02aabbccdd06',
    ]);
    // Accepts go ahead of whatever drops forwarded traffic (Docker's policy, ufw, firewalld).
    expect(calls.filter((call) => / -I /.test(call))).toHaveLength(2);
    expect(calls.filter((call) => / -I /.test(call)).every((call) => call.includes('-I FORWARD 1'))).toBe(true);
    expect(calls.at(-1)).toBe('sysctl -q -w net.ipv4.ip_forward=1');
  });

  it('without iptables: replaces its own nftables table whole each time', async () => {
    const state = await tempDir();
    const bin = await fakeBin({ ...COMMON, nft: 'echo "nft $*" >>"$STATE/log"; cat >>"$STATE/nft"; echo "-- end" >>"$STATE/nft"' });
    for (let run = 0; run < 2; run += 1) {
      const result = runKitScript(join(kit, 'nat.sh'), bin, { STATE: state, SYSFS_NET: sysfs });
      expect(result.stderr).toBe('');
      expect(result.status).toBe(0);
      expect(result.stdout).toContain('(nft)');
    }
    const transactions = (await readFile(join(state, 'nft'), 'utf8')).split('-- end\n').filter(Boolean);
    expect(transactions).toHaveLength(2);
    expect(transactions[1]).toBe(transactions[0]);
    const lines = transactions[0].split('\n').map((line) => line.trim());
    expect(lines.slice(0, 3)).toEqual([
      'table ip odroid_buildx_image',
      'delete table ip odroid_buildx_image',
      'table ip odroid_buildx_image {',
    ]);
    expect(lines).toContain('ip saddr 10.0.0.2 oifname != "enx02aabbccdd06" masquerade');
    expect(lines.filter((line) => line.endsWith('masquerade'))).toHaveLength(1);
  });

  it('says what is wrong: not root, no firewall tool, device not attached', async () => {
    const notRoot = runKitScript(join(kit, 'nat.sh'), await fakeBin({ ...COMMON, id: 'echo 1000' }), { SYSFS_NET: sysfs });
    expect(notRoot.status).not.toBe(0);
    expect(notRoot.stderr).toMatch(/^nat\.sh: run as root/);
    const noFirewall = runKitScript(join(kit, 'nat.sh'), await fakeBin(COMMON), { SYSFS_NET: sysfs, STATE: await tempDir() });
    expect(noFirewall.stderr).toMatch(/neither iptables nor nft/);
    const empty = await tempDir();
    const detached = runKitScript(join(kit, 'nat.sh'), await fakeBin({ ...COMMON, iptables: IPTABLES }), {
      SYSFS_NET: empty,
      STATE: await tempDir(),
    });
    expect(detached.status).not.toBe(0);
    expect(detached.stderr).toMatch(/no network interface has MAC 02:aa:bb:cc:dd:06: is the device plugged in/);
  });
});

describe('setup-buildx.sh', () => {
  it("one device: creates the context with the kit's client certificate and builds with the docker driver, the context itself", async () => {
    const state = await tempDir();
    const bin = await fakeBin({ docker: SETUP_BUILDX_DOCKER });
    for (let run = 0; run < 2; run += 1) {
      const result = runKitScript(join(kit, 'setup-buildx.sh'), bin, { STATE: state });
      expect(result.stderr).toBe('');
      expect(result.status).toBe(0);
      expect(result.stdout).toContain("driver docker: dockerd's own BuildKit on c2-test");
      expect(result.stdout).toContain('docker --context c2-test buildx build --platform linux/arm64');
    }
    const log = (await readFile(join(state, 'log'), 'utf8')).trim().split('\n');
    const calls = log.filter((call) => !call.includes(' inspect ') && call !== 'docker buildx version');
    const endpoint = `host=tcp://10.0.0.2:2376,ca=${kit}/tls/ca.pem,cert=${kit}/tls/cert.pem,key=${kit}/tls/key.pem`;
    expect(calls).toEqual([
      `docker context create --description odroid-buildx-image device c2-test --docker ${endpoint} c2-test`,
      `docker context update --docker ${endpoint} c2-test`,
    ]);
    expect(log.filter((call) => call === 'docker --context c2-test buildx inspect --bootstrap')).toHaveLength(2);
  });

  it("one device: removes an earlier kit's docker-container builder of the device's name, which would shadow the context", async () => {
    const state = await tempDir();
    await writeFile(join(state, 'builder-c2-test'), '');
    const result = runKitScript(join(kit, 'setup-buildx.sh'), await fakeBin({ docker: SETUP_BUILDX_DOCKER }, ['rm']), { STATE: state });
    expect(result.stderr).toBe('');
    expect(result.status).toBe(0);
    expect(await readFile(join(state, 'log'), 'utf8')).toContain('docker buildx rm c2-test\n');
  });

  it('stops with a clear message without docker buildx', async () => {
    const result = runKitScript(join(kit, 'setup-buildx.sh'), await fakeBin({ docker: 'exit 1' }), {});
    expect(result.status).not.toBe(0);
    expect(result.stderr).toMatch(/^setup-buildx\.sh: docker buildx not found/);
    // Named as Debian and Ubuntu package it and as Docker's own repository does.
    expect(result.stderr).toMatch(/\bdocker-buildx\b.*\bdocker-buildx-plugin\b/);
  });
});
