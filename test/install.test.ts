/**
 * host/install.sh, run as root on a stand-in host: a network namespace whose veth is the USB
 * link, with overlays on /etc and /var/lib (kitHost), the real exportfs (nfs-kernel-server's) and
 * mkfs.btrfs, a stand-in for the docker CLI only (setup-buildx.sh's own test covers its calls).
 */
import { type ChildProcess, execFileSync, spawnSync } from 'node:child_process';
import { chmod, readFile, stat, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { resolveConfig } from '../src/config/load.js';
import type { BuildConfig } from '../src/config/schema.js';
import { hostKitDirOf, writeHostKit } from '../src/host-kit/host-kit.js';
import {
  FIREWALL_CMD,
  fakeBin,
  KIT_HOST_NEEDS,
  type KitHost,
  kitHost,
  listenIn,
  SETUP_BUILDX_DOCKER,
  TCP_PROBE,
  withNmSharedZone,
} from './kit-helpers.js';
import { skipWithout, tempDir } from './support/images.js';

const HOST_MAC = '02:aa:bb:cc:dd:06';

const noHost = skipWithout({ ...KIT_HOST_NEEDS, 'mkfs.btrfs (btrfs-progs)': spawnSync('mkfs.btrfs', ['--version']).status === 0 });

async function kitFor(nfs: Partial<BuildConfig['nfs']>, edit: (config: BuildConfig) => BuildConfig = (config) => config) {
  const out = await tempDir();
  const config = resolveConfig({
    name: 'c2-test',
    usb: { hostMac: HOST_MAC, deviceMac: '02:aa:bb:cc:dd:02' },
    nfs: { dataImageSize: '1G', ...nfs },
  });
  await (await writeHostKit(out, [edit(config)], join(out, 'secrets'))).commit();
  return { out, kit: hostKitDirOf(out) };
}

/** The "+ command" lines: what install.sh says it runs. */
const commands = (stdout: string) => stdout.split('\n').filter((line) => line.startsWith('+ '));

// exportfs takes its lock files even to list the exports.
const EXPORTFS_LOCKS = ['/var/lib/nfs/.etab.lock', '/var/lib/nfs/export-lock'];
const changes = async (host: KitHost) => (await host.changed()).filter((path) => !EXPORTFS_LOCKS.includes(path));

describe('install.sh: usage', () => {
  it('says how to use it with --help, and refuses an unknown option with status 2', async () => {
    const { kit } = await kitFor({});
    const help = spawnSync('bash', [join(kit, 'install.sh'), '--help'], { encoding: 'utf8' });
    expect(help.status).toBe(0);
    expect(help.stdout).toMatch(/^usage: sudo \.\/install\.sh \[--dry-run\] \[--uninstall\]/);
    const wrong = spawnSync('bash', [join(kit, 'install.sh'), '--force'], { encoding: 'utf8' });
    expect(wrong.status).toBe(2);
    expect(wrong.stderr).toMatch(/^install\.sh: unknown option --force\nusage:/);
  });
});

describe.skipIf(noHost)('install.sh on a stand-in host', () => {
  let host: KitHost;
  let kit: string;
  let share: string;
  let state: string;
  let bin: string;
  const install = (...args: string[]) => host.run(join(kit, 'install.sh'), args, { bin, env: { STATE: state } });

  beforeAll(async () => {
    const dir = await tempDir();
    share = join(dir, 'share');
    ({ kit } = await kitFor({ export: share }));
    host = await kitHost(HOST_MAC, '10.0.0.2/24');
    state = await tempDir();
    bin = await fakeBin({ docker: SETUP_BUILDX_DOCKER });
  });
  afterAll(async () => host?.remove());

  it('with --dry-run lists every change and makes none; then makes exactly those; run again, it changes nothing', async () => {
    const dry = install('--dry-run');
    expect(dry.stderr).toBe('');
    expect(dry.status).toBe(0);
    expect(await changes(host)).toEqual([]);
    expect(spawnSync('test', ['-e', share]).status).toBe(1);
    // The docker CLI was only asked whether the builder exists.
    expect((await readFile(join(state, 'log'), 'utf8')).trim().split('\n')).toEqual(['docker buildx inspect c2-test']);
    expect(commands(dry.stdout)).toEqual([
      '+ install -d -m 700 /var/lib/odroid-buildx-image',
      `+ mkdir -p ${share}`,
      `+ truncate -s 1G ${share}/c2-test.btrfs.new`,
      `+ mkfs.btrfs -q -K -L docker-data -${dry.stdout.includes("-O '^free") ? 'O' : 'R'} '^free-space-tree' ${share}/c2-test.btrfs.new`,
      `+ mv ${share}/c2-test.btrfs.new ${share}/c2-test.btrfs`,
      '+ install -d -m 755 /etc/exports.d',
      `+ install -m 644 -o root -g root ${kit}/exports /etc/exports.d/c2-test.exports`,
      '+ exportfs -ra',
      `+ add_lines ${kit}/known_hosts /etc/ssh/ssh_known_hosts /var/lib/odroid-buildx-image/c2-test.known_hosts`,
      `+ as_user root ${kit}/setup-buildx.sh`,
    ]);
    expect(dry.stdout).toContain(`NetworkManager is not running here: after each plug-in run sudo ${kit}/nat.sh`);

    const real = install();
    expect(real.stderr).toBe('');
    expect(real.status).toBe(0);
    // Never a command it did not print under --dry-run.
    expect(commands(real.stdout)).toEqual(commands(dry.stdout));

    // The export, as the NFS server's own tool lists it.
    const exports = host.shell('exportfs -v');
    expect(exports.stdout).toMatch(new RegExp(`^${share}\\s+10\\.0\\.0\\.2\\(.*\\brw\\b.*\\bno_root_squash\\b`, 'm'));
    expect(host.shell('cat /etc/exports.d/c2-test.exports').stdout).toBe(await readFile(join(kit, 'exports'), 'utf8'));
    // The data image: btrfs the 3.16 kernel can mount read-write (no free space tree, a
    // compat_ro feature from 4.5), sparse.
    const image = join(share, 'c2-test.btrfs');
    const superblock = execFileSync('btrfs', ['inspect-internal', 'dump-super', image], { encoding: 'utf8' });
    expect(superblock).toMatch(/^label\s+docker-data$/m);
    expect(superblock).toMatch(/^compat_ro_flags\s+0x0$/m);
    const { size, blocks } = await stat(image);
    expect(size).toBe(2 ** 30);
    expect(blocks * 512).toBeLessThan(size / 10);
    // The SSH host keys, where ssh finds them for every user.
    expect(host.shell('ssh-keygen -F 10.0.0.2 -f /etc/ssh/ssh_known_hosts').status).toBe(0);
    // One device: the docker driver, whose builder is the device's context (setup-buildx.sh says why).
    expect(await readFile(join(state, 'log'), 'utf8')).toContain('docker --context c2-test buildx inspect --bootstrap');

    const changed = await changes(host);
    const again = install();
    expect(again.status).toBe(0);
    expect(commands(again.stdout)).toEqual([]);
    expect(again.stdout).toMatch(/^install\.sh: nothing to change: /m);
    expect(await changes(host)).toEqual(changed);
  });

  it('with --uninstall undoes what it added, last first, leaving /etc and /var/lib as they were, and keeps the data image', async () => {
    const dry = install('--uninstall', '--dry-run');
    expect(dry.status).toBe(0);
    expect(await changes(host)).not.toEqual([]);
    const undo = install('--uninstall');
    expect(undo.stderr).toBe('');
    expect(undo.status).toBe(0);
    expect(commands(undo.stdout)).toEqual(commands(dry.stdout));
    expect(commands(undo.stdout)).toEqual([
      '+ forget_builder root c2-test',
      '+ remove_lines /var/lib/odroid-buildx-image/c2-test.known_hosts /etc/ssh/ssh_known_hosts && rm -f /var/lib/odroid-buildx-image/c2-test.known_hosts',
      '+ rm -f /etc/exports.d/c2-test.exports && exportfs -ra',
      '+ rmdir --ignore-fail-on-non-empty /etc/exports.d',
      '+ rm -f /var/lib/odroid-buildx-image/c2-test.undo',
      '+ rmdir --ignore-fail-on-non-empty /var/lib/odroid-buildx-image',
    ]);
    expect(await changes(host)).toEqual([]);
    expect(host.shell('exportfs -v').stdout).toBe('');
    expect(spawnSync('test', ['-e', join(state, 'builder-c2-test')]).status).toBe(1);
    expect(spawnSync('test', ['-e', join(state, 'context-c2-test')]).status).toBe(1);
    expect(undo.stdout).toContain(`kept ${share}/c2-test.btrfs: it holds the device's Docker images`);
    expect(spawnSync('test', ['-f', join(share, 'c2-test.btrfs')]).status).toBe(0);
    const twice = install('--uninstall');
    expect(twice.status).toBe(0);
    expect(twice.stdout).toMatch(/^install\.sh: nothing to undo/);
  });
});

describe.skipIf(noHost)('install.sh refuses', () => {
  let host: KitHost;
  beforeAll(async () => {
    host = await kitHost(HOST_MAC, '10.0.0.2/24');
  });
  afterAll(async () => host?.remove());

  it('an export that is a system directory, named or through a link, before changing anything', async () => {
    const link = join(await tempDir(), 'share');
    await symlink('/etc', link);
    const cases: [Awaited<ReturnType<typeof kitFor>>, string][] = [
      // Past the config's own checks, as an edited kit or an older build would be.
      [
        await kitFor({}, (config) => ({ ...config, nfs: { ...config.nfs, export: '/var/lib' } })),
        'refusing to export /var/lib: it is a system directory',
      ],
      [await kitFor({ export: link }), `refusing to export ${link} (which is /etc): it is a system directory`],
    ];
    for (const [{ kit }, message] of cases) {
      const run = host.run(join(kit, 'install.sh'));
      expect(run.status).toBe(1);
      expect(run.stderr).toContain(`install.sh: ${message}`);
      expect(run.stdout).toBe('');
      expect(await changes(host)).toEqual([]);
    }
  });

  it('to go on without an NFS server, or with NFS 4.1 switched off, naming the packages and the fix', async () => {
    const { kit } = await kitFor({ export: join(await tempDir(), 'share') });
    const noServer = await fakeBin(
      {},
      ['id', 'realpath', 'cmp', 'awk', 'mkfs.btrfs', 'nmcli'].filter(
        (tool) => spawnSync('bash', ['--norc', '-c', `command -v ${tool}`]).status === 0,
      ),
    );
    const missing = host.run(join(kit, 'install.sh'), [], { path: noServer });
    expect(missing.status).toBe(1);
    expect(missing.stderr).toContain(
      'install.sh: no NFS server here (no exportfs): install nfs-utils (Fedora) or nfs-kernel-server (Debian, Ubuntu)',
    );
    const off = host.shell(`printf '[nfsd]\\nvers4.1=n\\n' >>/etc/nfs.conf && bash ${kit}/install.sh`);
    expect(off.status).toBe(1);
    expect(off.stderr).toContain('install.sh: the NFS server has NFS 4.1 switched off');
    expect(off.stderr).toContain('sudo nfsconf --set nfsd vers4.1 y');
    expect(commands(off.stdout)).toEqual([]);
  });
});

const noFirewallHost = skipWithout({
  ...KIT_HOST_NEEDS,
  'mkfs.btrfs (btrfs-progs)': spawnSync('mkfs.btrfs', ['--version']).status === 0,
  'firewall-offline-cmd (firewalld)': spawnSync('firewall-offline-cmd', ['--version']).status === 0,
  nft: spawnSync('nft', ['--version']).status === 0,
});

describe.skipIf(noFirewallHost)("install.sh and firewalld's nm-shared zone", () => {
  let host: KitHost;
  let listener: ChildProcess;
  const LINK = `enx${HOST_MAC.replaceAll(':', '')}`;
  /** What a connection to the NFS port from `source` on the device's side meets. */
  const nfsFrom = (source: string) => host.onDevice(`${TCP_PROBE} 10.0.0.1 2049 ${source}`).stdout.trim();
  const zoneFile = () => host.shell('cat /etc/firewalld/zones/nm-shared.xml').stdout;

  beforeAll(async () => {
    host = await kitHost(HOST_MAC, '10.0.0.2/24');
    host.onDevice('ip address add 10.0.0.3/24 dev usb0');
    const setUp = host.shell(`ip address add 10.0.0.1/24 dev ${LINK} && ${withNmSharedZone(LINK)}`);
    expect(setUp.stderr).toBe('');
    // A server on the NFS port: what answers there does not matter to the firewall.
    listener = await listenIn(host.namespace, '10.0.0.1', 2049);
  });
  afterAll(async () => {
    listener?.kill();
    await host?.remove();
  });

  it('opens TCP 2049 to the device alone, saved and running, and closes it again on --uninstall', async () => {
    const { kit } = await kitFor({ export: join(await tempDir(), 'share') });
    const state = await tempDir();
    const bin = await fakeBin({ docker: SETUP_BUILDX_DOCKER, 'firewall-cmd': FIREWALL_CMD });
    const install = (...args: string[]) => host.run(join(kit, 'install.sh'), args, { bin, env: { STATE: state } });
    const before = zoneFile();
    expect(nfsFrom('10.0.0.2')).toBe('EHOSTUNREACH');

    const rule = `'--add-rich-rule=rule family="ipv4" source address="10.0.0.2" port port="2049" protocol="tcp" accept'`;
    const run = install();
    expect(run.stderr).toBe('');
    expect(run.status).toBe(0);
    expect(commands(run.stdout)).toEqual(
      expect.arrayContaining([`+ firewall-cmd --permanent --zone=nm-shared ${rule}`, `+ firewall-cmd --zone=nm-shared ${rule}`]),
    );
    expect(nfsFrom('10.0.0.2')).toBe('connected');
    expect(nfsFrom('10.0.0.3')).toBe('EHOSTUNREACH');
    // Saved: firewalld itself reads the rule back from the zone file.
    expect(zoneFile()).toContain('<source address="10.0.0.2"/>');
    expect(host.shell('firewall-offline-cmd --zone=nm-shared --list-rich-rules').stdout.trim().split('\n')).toEqual([
      'rule priority="32767" reject',
      'rule family="ipv4" source address="10.0.0.2" port port="2049" protocol="tcp" accept',
    ]);

    const again = install();
    expect(commands(again.stdout)).toEqual([]);

    const undo = install('--uninstall');
    expect(undo.status).toBe(0);
    expect(nfsFrom('10.0.0.2')).toBe('EHOSTUNREACH');
    expect(zoneFile()).toBe(before);
  });
});

describe.skipIf(noHost)('install.sh with NetworkManager and systemd, run with sudo', () => {
  let host: KitHost;
  afterAll(async () => host?.remove());

  it('installs the profile privately and reloads, enables the NFS server, runs setup-buildx.sh as the user in their home; --uninstall undoes each', async () => {
    host = await kitHost(HOST_MAC, '10.0.0.2/24');
    const { out, kit } = await kitFor({ export: join(await tempDir(), 'share') });
    const state = await tempDir();
    // setup-buildx.sh runs as nobody: the kit, the stand-ins and their logs must be open to it.
    await chmod(out, 0o755);
    const log = (tool: string) => `echo "${tool} $*" >>"$STATE/log"`;
    const bin = await fakeBin({
      nmcli: `${log('nmcli')}\n[ "$*" != "-t -f RUNNING general" ] || echo running`,
      // nfs-server neither running nor enabled yet.
      systemctl: `${log('systemctl')}\ncase $1 in is-active) exit 3 ;; is-enabled) exit 1 ;; esac`,
      docker: `echo "as $(id -un) in $HOME" >>"$STATE/users"\n${SETUP_BUILDX_DOCKER}`,
    });
    await chmod(bin, 0o755);
    await chmod(state, 0o777);
    for (const file of ['log', 'users']) {
      await writeFile(join(state, file), '');
      await chmod(join(state, file), 0o666);
    }
    const profile = '/etc/NetworkManager/system-connections/c2-test.nmconnection';
    const install = (...args: string[]) =>
      host.shell(
        `mkdir -p /run/systemd/system && PATH=${bin}:$PATH SUDO_USER=nobody STATE=${state} bash ${kit}/install.sh ${args.join(' ')}`,
      );
    host.shell('mkdir -p /etc/NetworkManager/system-connections');
    const before = await changes(host);

    const run = install();
    expect(run.stderr).toBe('');
    expect(run.status).toBe(0);
    expect(commands(run.stdout)).toEqual(
      expect.arrayContaining([
        `+ install -m 600 -o root -g root ${kit}/c2-test.nmconnection ${profile}`,
        '+ nmcli connection reload',
        '+ systemctl enable --now nfs-server',
        `+ as_user nobody ${kit}/setup-buildx.sh`,
      ]),
    );
    expect(run.stdout).not.toContain('nat.sh');
    expect(host.shell(`stat -c '%a %U %G' ${profile}`).stdout).toBe('600 root root\n');
    expect(host.shell(`cmp ${kit}/c2-test.nmconnection ${profile}`).status).toBe(0);
    expect(new Set((await readFile(join(state, 'users'), 'utf8')).trim().split('\n'))).toEqual(new Set(['as nobody in /nonexistent']));

    const undo = install('--uninstall');
    expect(undo.status).toBe(0);
    expect(commands(undo.stdout)).toEqual(
      expect.arrayContaining([`+ rm -f ${profile} && nmcli connection reload`, '+ systemctl disable --now nfs-server']),
    );
    expect(await changes(host)).toEqual(before);
    const calls = (await readFile(join(state, 'log'), 'utf8')).split('\n');
    expect(calls.filter((call) => /^(nmcli connection|systemctl (enable|disable))/.test(call))).toEqual([
      'nmcli connection reload',
      'systemctl enable --now nfs-server',
      'systemctl disable --now nfs-server',
      'nmcli connection reload',
    ]);
  });
});

describe.skipIf(noHost)('install.sh when a step fails', () => {
  let host: KitHost;
  afterAll(async () => host?.remove());

  it('stops there saying so, and --uninstall still undoes that step and those before it', async () => {
    host = await kitHost(HOST_MAC, '10.0.0.2/24');
    const { kit } = await kitFor({ export: join(await tempDir(), 'share') });
    const state = await tempDir();
    // The device's Docker does not answer: setup-buildx.sh makes the context, then cannot start its builder.
    const unanswered = SETUP_BUILDX_DOCKER.replace(
      'if [ "$3" = --bootstrap ]; then echo "Name: ${4:-context}"',
      'if [ "$3" = --bootstrap ]; then exit 1',
    );
    expect(unanswered).not.toBe(SETUP_BUILDX_DOCKER);
    const bin = await fakeBin({ docker: unanswered });
    const install = (...args: string[]) => host.run(join(kit, 'install.sh'), args, { bin, env: { STATE: state } });
    const run = install();
    expect(run.status).toBe(1);
    expect(run.stderr).toContain(`install.sh: failed: as_user root ${kit}/setup-buildx.sh (above: why; the rest is not done`);
    expect(spawnSync('test', ['-e', join(state, 'context-c2-test')]).status).toBe(0);

    const undo = install('--uninstall');
    expect(undo.status).toBe(0);
    expect(commands(undo.stdout)[0]).toBe('+ forget_builder root c2-test');
    expect(spawnSync('test', ['-e', join(state, 'builder-c2-test')]).status).toBe(1);
    expect(spawnSync('test', ['-e', join(state, 'context-c2-test')]).status).toBe(1);
    expect(await changes(host)).toEqual([]);
  });
});
