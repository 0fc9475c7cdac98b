import { execFile as execFileCallback, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdir, readdir, readFile, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import { beforeAll, describe, expect, it } from 'vitest';
import { resolveConfig } from '../src/config/load.js';
import { renderTemplate } from '../src/engine/templates.js';
import { dockerView } from '../src/steps/docker.js';
import { skipWithout, tempDir } from './support/images.js';

const execFile = promisify(execFileCallback);
const TEMPLATE = 'docker/usr/local/sbin/builder-storage.mustache';
const CONFIG = { name: 'c2-test', nfs: { server: '10.0.0.1', export: '/srv/c2-test' } };

let work: string;
beforeAll(async () => {
  work = await tempDir();
});

/** The script rendered as the docker step renders it, with some view values replaced. */
async function script(dir: string, overrides: object = {}): Promise<string> {
  const file = path.join(dir, 'builder-storage');
  await writeFile(file, await renderTemplate(TEMPLATE, { ...dockerView(resolveConfig(CONFIG)), ...overrides }), { mode: 0o755 });
  return file;
}

describe('builder-storage', () => {
  it('passes shellcheck -s sh', async () => {
    const check = spawnSync('shellcheck', ['-s', 'sh', await script(work)], { encoding: 'utf8' });
    expect(check.error).toBeUndefined();
    expect(check.stdout + check.stderr).toBe('');
    expect(check.status).toBe(0);
  });

  it('picks btrfs on a btrfs data image, else overlay2 only with the mainline overlay, else vfs', async () => {
    const file = await script(work);
    const driver = async (listing: string, fstype = 'ext4') => {
      const filesystems = path.join(work, 'filesystems');
      await writeFile(filesystems, listing);
      const run = spawnSync('sh', [file, 'driver', filesystems, fstype], { encoding: 'utf8' });
      expect(run.stderr).toBe('');
      expect(run.status).toBe(0);
      return run.stdout;
    };
    expect(await driver('nodev\tsysfs\nnodev\ttmpfs\n\text4\nnodev\toverlay\nnodev\tnfs4\n')).toBe('overlay2\n');
    // HardKernel's 3.16 with its modules loaded: the old overlayfs and aufs, neither usable by current dockerd.
    expect(await driver('nodev\tsysfs\nnodev\ttmpfs\n\text4\nnodev\toverlayfs\nnodev\taufs\nnodev\tnfs\n')).toBe('vfs\n');
    expect(await driver('nodev\tsysfs\n\text4\n\tvfat\n')).toBe('vfs\n');
    expect(await driver('nodev\tsysfs\n\text4\nnodev\toverlayfs\n\tbtrfs\n', 'btrfs')).toBe('btrfs\n');
    expect(await driver('nodev\tsysfs\n\text4\nnodev\toverlay\n\tbtrfs\n', 'btrfs')).toBe('btrfs\n');
  });

  it('refuses to run without a command', async () => {
    const run = spawnSync('sh', [await script(work)], { encoding: 'utf8' });
    expect(run.status).toBe(2);
    expect(run.stderr).toContain('usage:');
  });
});

// What a boot does that needs no privilege, with real commands on files in a temp dir. In a user
// namespace the kernel refuses to mount NFS or ext4, so nothing here can touch this machine.
const noNamespaces = skipWithout({
  'a veth pair in a user and network namespace (unshare -rnm ip link add ... type veth)':
    spawnSync('unshare', ['-rnm', 'ip', 'link', 'add', 'usb0', 'type', 'veth', 'peer', 'name', 'host0']).status === 0,
  'mkfs.ext4': spawnSync('mkfs.ext4', ['-V']).status === 0,
});

describe.skipIf(noNamespaces)('builder-storage in a user namespace', () => {
  async function setup(overrides: object = {}) {
    const dir = await tempDir();
    const share = path.join(dir, 'share');
    await mkdir(share);
    const file = await script(dir, {
      shareDir: share,
      dataRoot: path.join(dir, 'data'),
      envFile: path.join(dir, 'run', 'dockerd.env'),
      dataImageSize: '64M',
      ...overrides,
    });
    /** Runs the script with the share dir a mount point, as if NFS had mounted it. */
    const withShare = (...args: string[]) =>
      spawnSync('unshare', ['-rm', 'sh', '-c', 'mount --bind "$1" "$1" && shift && exec sh "$@"', 'sh', share, file, ...args], {
        encoding: 'utf8',
      });
    return { share, image: path.join(share, 'c2-test.ext4'), file, withShare };
  }

  const ADD_USB0 = 'ip link add usb0 type veth peer name host0 && ip addr add 10.0.0.2/24 dev usb0';
  const START_UPTIME = 100;

  /**
   * Runs `start` in its own network and mount namespace on a clock of its own: /proc/uptime is a
   * file there, and `sleep` moves it on instead of waiting, so the script's waits take no time and
   * no machine load can make them miss. usb0 gets the device address at second `linkAt` (0: before
   * the script starts; undefined: never). `elapsed`: the seconds the script waited, on that clock.
   */
  async function startOnClock(file: string, linkAt?: number) {
    const dir = await tempDir();
    const uptime = path.join(dir, 'uptime');
    await writeFile(uptime, `${START_UPTIME}.00 0.00\n`);
    const bin = path.join(dir, 'bin');
    await mkdir(bin);
    const bringUp =
      linkAt !== undefined && linkAt > 0
        ? `[ "$up" -ge ${START_UPTIME + linkAt} ] && ! ip link show usb0 >/dev/null 2>&1 && { ${ADD_USB0}; }`
        : '';
    await writeFile(
      path.join(bin, 'sleep'),
      `#!/bin/sh\nread -r up _ <'${uptime}'\nup=$((\${up%%.*} + $1))\necho "$up.00 0.00" >'${uptime}'\n${bringUp}\nexit 0\n`,
      { mode: 0o755 },
    );
    const prelude = `mount --bind '${uptime}' /proc/uptime${linkAt === 0 ? ` && ${ADD_USB0}` : ''}`;
    const run = spawnSync('unshare', ['-rnm', 'sh', '-c', `${prelude} && exec sh "$0" start`, file], {
      encoding: 'utf8',
      env: { ...process.env, PATH: `${bin}:${process.env.PATH}` },
    });
    const elapsed = Number((await readFile(uptime, 'utf8')).split('.')[0]) - START_UPTIME;
    return { ...run, elapsed };
  }

  it('gives up on an unreachable share after the wait, saying what to check', async () => {
    const { file } = await setup({ nfsWaitSeconds: 2 });
    const run = await startOnClock(file, 0);
    expect(run.status).toBe(1);
    expect(run.elapsed).toBeGreaterThanOrEqual(2);
    expect(run.stderr).toMatch(
      /NFS share 10\.0\.0\.1:\/srv\/c2-test unreachable after 2s \(.*usb0.*\): is the host exporting it \(see the host kit\) and is usb0 up\? Then: systemctl start docker\n$/,
    );
    expect(run.stderr).toContain('last mount error:');
  });

  // dockerd listens on the device's address and fails at once without it.
  it('waits for usb0 to have the device address before anything else, within the same bound', async () => {
    const { file } = await setup({ nfsWaitSeconds: 3 });
    const never = await startOnClock(file);
    expect(never.status).toBe(1);
    expect(never.elapsed).toBeGreaterThanOrEqual(3);
    expect(never.stderr).toBe(
      "builder-storage: usb0 has no address 10.0.0.2 after 3s (there is no usb0: is g_ether loaded?): is the board's USB OTG port connected to the host? Then: systemctl start docker\n",
    );
    // The address comes a second late: the script goes on to the share (unreachable here).
    const late = await startOnClock(file, 1);
    expect(late.status).toBe(1);
    expect(late.stderr).not.toContain('has no address');
    expect(late.stderr).toContain('NFS share 10.0.0.1:/srv/c2-test unreachable after 3s');
  });

  it('creates a sparse ext4 image on first use, then only checks it', async () => {
    const { image, withShare } = await setup();
    const first = withShare('prepare');
    expect(first.stderr).toBe('');
    expect(first.status).toBe(0);
    expect(first.stdout).toContain('creating c2-test.ext4 (64M, sparse) on the share');
    const created = await stat(image);
    expect(created.size).toBe(64 * 1024 * 1024);
    expect(created.blocks * 512).toBeLessThan(created.size / 2);
    await expect(stat(`${image}.new`)).rejects.toThrow();
    const { stdout: header } = await execFile('dumpe2fs', ['-h', image]);
    expect(header).toMatch(/^Filesystem volume name:\s+docker-data$/m);

    const second = withShare('prepare');
    expect(second.status).toBe(0);
    expect(second.stdout).not.toContain('creating');
    expect((await stat(image)).ino).toBe(created.ino);
  });

  it('escalates to e2fsck -fy with a log on the share when -p cannot repair the image', async () => {
    const { image, share, withShare } = await setup();
    expect(withShare('prepare').status).toBe(0);
    // An inode that lost its directory entry, in a file system marked as having errors:
    // e2fsck -p stops with "UNEXPECTED INCONSISTENCY" (exit 4); -fy reconnects it.
    const payload = path.join(share, 'payload');
    await writeFile(payload, randomBytes(10_000));
    spawnSync('debugfs', ['-w', '-f', '-', image], { input: `write ${payload} f\nunlink f\nssv state 2\n` });
    expect(spawnSync('e2fsck', ['-p', image]).status).toBe(4);
    const run = withShare('prepare');
    expect(run.stdout).toContain('e2fsck -p could not repair c2-test.ext4 (exit 4): running e2fsck -fy');
    expect(run.stdout).toContain('e2fsck -fy repaired c2-test.ext4');
    expect(run.status).toBe(0);
    expect(await readFile(`${image}.fsck.log`, 'utf8')).toContain('Unattached inode');
    expect(spawnSync('e2fsck', ['-fn', image]).status).toBe(0);
  });

  it('fails clearly when the image is beyond repair', async () => {
    const { image, withShare } = await setup();
    await writeFile(image, randomBytes(1024 * 1024));
    const run = withShare('prepare');
    expect(run.status).toBe(1);
    expect(run.stderr).toMatch(
      /10\.0\.0\.1:\/srv\/c2-test\/c2-test\.ext4 is damaged beyond automatic repair \(e2fsck -fy exit 8, see c2-test\.ext4\.fsck\.log beside it\); move it aside on the host/,
    );
  });

  // The device's clock is set only where it may be (never in this namespace): --dry-run shows the
  // command, and a `date` on PATH plays the device's clock.
  it('host-time: moves a clock that is behind to the time of a file made on the share, never back', async () => {
    const { file, share } = await setup();
    const bin = await tempDir();
    const deviceClock = 1577836800;
    await writeFile(path.join(bin, 'date'), `#!/bin/sh\nif [ "$1" = +%s ]; then echo ${deviceClock}; else exec /bin/date "$@"; fi\n`, {
      mode: 0o755,
    });
    const hostTime = (env: NodeJS.ProcessEnv) =>
      spawnSync(
        'unshare',
        ['-rm', 'sh', '-c', 'mount --bind "$1" "$1" && shift && exec sh "$@"', 'sh', share, file, '--dry-run', 'host-time'],
        {
          encoding: 'utf8',
          env,
        },
      );
    const before = Math.floor(Date.now() / 1000);
    const behind = hostTime({ ...process.env, PATH: `${bin}:${process.env.PATH}` });
    expect(behind.stderr).toBe('');
    expect(behind.status).toBe(0);
    const set = /^\+ date -u -s @(\d+)$/m.exec(behind.stdout);
    expect(set, behind.stdout).not.toBeNull();
    // The share's file time is this machine's clock, here the host's.
    expect(Number(set![1])).toBeGreaterThanOrEqual(before);
    expect(Number(set![1])).toBeLessThanOrEqual(Date.now() / 1000);
    expect(behind.stdout).toMatch(/clock set to the host's time, \d+s ahead/);
    expect(await readdir(share)).toEqual([]);
    // A device clock already at the host's time stays.
    const level = hostTime(process.env);
    expect(level.status).toBe(0);
    expect(level.stdout).not.toContain('date -u -s');
  });

  it('prepares only with the share mounted', async () => {
    const { file } = await setup();
    const run = spawnSync('unshare', ['-rm', 'sh', file, 'prepare'], { encoding: 'utf8' });
    expect(run.status).toBe(1);
    expect(run.stderr).toContain('is not mounted: mount 10.0.0.1:/srv/c2-test there first');
  });
});
