import { execFile as execFileCallback } from 'node:child_process';
import { mkdir, readdir, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import { beforeAll, describe, expect, it } from 'vitest';
import { resolveConfig } from '../../src/config/load.js';
import { describeOperation } from '../../src/engine/operations.js';
import { planImage } from '../../src/engine/patch.js';
import type { Step } from '../../src/engine/step.js';
import { UserError } from '../../src/errors.js';
import { protectFstab } from '../../src/formats/fstab.js';
import { openImage } from '../../src/image/open.js';
import { readonlyRoot } from '../../src/steps/readonly-root.js';
import { debugfsCat, debugfsStat } from '../support/debugfs.js';
import { e2fsckClean, fsckFatClean } from '../support/fsck.js';
import { copyOfStockImage, partitionOffsets, tempDir } from '../support/images.js';
import { mtypeBoot } from '../support/mtools.js';
import { referenceText } from '../support/reference.js';
import { changedLines, lineIndex } from '../text-diff.js';
import { type PatchedFixture, patchFixture } from './patch-fixture.js';
import { appliedOn } from './probe.js';

const execFile = promisify(execFileCallback);
const INIT_ARG = 'init=/sbin/overlay-init';
/** What the step adds: no boot-time fsck of the never-written root, then the overlay's init. */
const ADDED_ARGS = `fsck.mode=skip fastboot ${INIT_ARG}`;
const CONFIG = { hostname: 'c2-test' };
const MASKED = ['apt-daily.timer', 'apt-daily-upgrade.timer', 'unattended-upgrades.service'];
const KEY_TYPES = ['ed25519', 'ecdsa', 'rsa'];

const occurrences = (text: string, needle: string) => text.split(needle).length - 1;

/** The literal value of boot.ini's active `setenv bootargs "..."`, read with a plain regex. */
const bootargsOf = (bootIni: string) => /^setenv bootargs "([^"]*)"/m.exec(bootIni)?.[1];

async function rootfsSpec(img: string): Promise<string> {
  const linux = (await partitionOffsets(img)).partitions.find((p) => p.type === '83');
  return `${img}?offset=${linux!.offset}`;
}

/** Runs debugfs requests that change the rootfs of a test image (what a real image might hold). */
async function debugfsWrite(img: string, requests: string[]): Promise<void> {
  const dir = await tempDir();
  const script = path.join(dir, 'requests');
  await writeFile(script, `${requests.join('\n')}\n`);
  const { stderr } = await execFile('debugfs', ['-w', '-f', script, await rootfsSpec(img)]);
  const errors = stderr.split('\n').filter((line) => line && !line.startsWith('debugfs '));
  expect(errors).toEqual([]);
}

/** SHA256 fingerprint, bits and comment of a public key, as ssh-keygen prints them. */
async function fingerprint(publicKey: string): Promise<string> {
  const dir = await tempDir();
  const file = path.join(dir, 'key.pub');
  await writeFile(file, publicKey);
  return (await execFile('ssh-keygen', ['-l', '-f', file])).stdout.trim();
}

async function imageFingerprints(img: string): Promise<string[]> {
  return Promise.all(KEY_TYPES.map(async (type) => fingerprint(await debugfsCat(img, `/etc/ssh/ssh_host_${type}_key.pub`))));
}

/** What the device's files look like after a build, for comparing two builds. */
async function snapshot(img: string): Promise<Record<string, string>> {
  return {
    'boot.ini': await mtypeBoot(img, 'boot.ini'),
    'boot.ini.default': await mtypeBoot(img, 'boot.ini.default'),
    fstab: await debugfsCat(img, '/etc/fstab'),
    'overlay-init': await debugfsCat(img, '/sbin/overlay-init'),
    apt: await debugfsCat(img, '/etc/apt/apt.conf.d/99readonly-root'),
    journald: await debugfsCat(img, '/etc/systemd/journald.conf.d/volatile.conf'),
    keys: (await imageFingerprints(img)).join('\n'),
  };
}

describe('readonly-root step on a stock C2 image', () => {
  let built: PatchedFixture;
  let first: Record<string, string>;

  beforeAll(async () => {
    built = await patchFixture([readonlyRoot], CONFIG);
    first = await snapshot(built.img);
  });

  it('adds init=/sbin/overlay-init to bootargs, changing no other line of boot.ini', async () => {
    const stock = referenceText('odroid-c2/boot.ini');
    const bootIni = first['boot.ini'];
    const stockArgs = bootargsOf(stock)!;
    expect(changedLines(stock, bootIni)).toEqual([[lineIndex(stock, /^setenv bootargs /), `setenv bootargs "${stockArgs} ${ADDED_ARGS}"`]]);
    expect(stockArgs.split(' ')).toContain('ro');
    expect(await fsckFatClean(built.img)).toMatchObject({ ok: true });
  });

  it('makes the same bootargs the persistent override the bootini package re-applies after upgrades', async () => {
    const stock = referenceText('odroid-c2/boot.ini.default');
    const expected = `bootargs=${bootargsOf(first['boot.ini'])}`;
    expect(changedLines(stock, first['boot.ini.default'])).toEqual([[lineIndex(stock, /^#bootargs=/), expected]]);
    // The section the persistence script reads.
    expect(first['boot.ini.default'].split('\n')[0]).toBe('[general]');
  });

  it('installs overlay-init 0755 root:root, rendered, shellcheck-clean, loading modules the kernel ships', async () => {
    expect(await debugfsStat(built.img, '/sbin/overlay-init')).toMatchObject({ type: 'regular', mode: 0o755, uid: 0, gid: 0 });
    const script = first['overlay-init'];
    expect(script).toContain('\nREAL_INIT=/sbin/init\nTMPFS_SIZE=50%\n');
    expect(script).not.toContain('{{');
    const dir = await tempDir();
    await writeFile(path.join(dir, 'overlay-init'), script);
    const check = await execFile('shellcheck', ['-s', 'sh', path.join(dir, 'overlay-init')]).catch((error: { stdout: string }) => error);
    expect(check.stdout).toBe('');

    // modprobe names must match module files: the 3.16 kernel ships overlayfs.ko and aufs.ko.
    const probed = /for module in ([^;]+); do/.exec(script)![1].split(' ');
    const shipped = (await debugfsCat(built.img, '/lib/modules/3.16.85-65/modules.dep'))
      .split('\n')
      .map((line) => path.basename(line.split(':')[0], '.ko'))
      .filter((name) => ['overlay', 'overlayfs', 'aufs'].includes(name));
    expect(shipped.sort()).toEqual(['aufs', 'overlayfs']);
    expect(probed).toEqual(expect.arrayContaining(shipped));
  });

  it('mounts the FAT read-only without a boot-time fsck and leaves the root entry as it was', async () => {
    const stock = `UUID=e139ce78-9841-40fe-8823-96a304a09859 / ext4 errors=remount-ro,noatime 0 1\nLABEL=BOOT /media/boot vfat defaults 0 1\n`;
    expect(await debugfsCat(await copyOfStockImage('stock', await tempDir()), '/etc/fstab')).toBe(stock);
    expect(first.fstab).toBe(
      `UUID=e139ce78-9841-40fe-8823-96a304a09859 / ext4 errors=remount-ro,noatime 0 1\nLABEL=BOOT /media/boot vfat ro 0 0\n`,
    );
  });

  it('masks the apt timers and unattended-upgrades, and drops their enablement links', async () => {
    for (const unit of MASKED) {
      expect(await debugfsStat(built.img, `/etc/systemd/system/${unit}`)).toMatchObject({
        type: 'symlink',
        target: '/dev/null',
        uid: 0,
        gid: 0,
      });
      expect(await debugfsStat(built.img, `/lib/systemd/system/${unit}`)).toMatchObject({ type: 'regular' });
    }
    expect(await debugfsStat(built.img, '/etc/systemd/system/timers.target.wants/apt-daily.timer')).toBeUndefined();
    expect(await debugfsStat(built.img, '/etc/systemd/system/timers.target.wants/apt-daily-upgrade.timer')).toBeUndefined();
    expect(await debugfsStat(built.img, '/etc/systemd/system/multi-user.target.wants/unattended-upgrades.service')).toBeUndefined();
    // Only those: ssh stays enabled.
    expect(await debugfsStat(built.img, '/etc/systemd/system/multi-user.target.wants/ssh.service')).toMatchObject({ type: 'symlink' });
  });

  it('turns every APT::Periodic job off as apt itself reads the config directory', async () => {
    expect(await debugfsStat(built.img, '/etc/apt/apt.conf.d/99readonly-root')).toMatchObject({
      type: 'regular',
      mode: 0o644,
      uid: 0,
      gid: 0,
    });
    const dir = await tempDir();
    const parts = path.join(dir, 'apt.conf.d');
    await mkdir(parts);
    for (const name of ['20auto-upgrades', '99readonly-root']) {
      await writeFile(path.join(parts, name), await debugfsCat(built.img, `/etc/apt/apt.conf.d/${name}`));
    }
    // APT_CONFIG is read first, so it can point apt at the image's files instead of the host's.
    await writeFile(path.join(dir, 'apt.conf'), `Dir::Etc::Parts "${parts}/";\nDir::Etc::Main "${dir}/none";\n`);
    const { stdout } = await execFile('apt-config', ['dump', 'APT::Periodic'], {
      env: { ...process.env, APT_CONFIG: path.join(dir, 'apt.conf') },
    });
    const settings = stdout.split('\n').filter((line) => line.startsWith('APT::Periodic::'));
    expect(settings).toContain('APT::Periodic::Unattended-Upgrade "0";');
    expect(settings).toContain('APT::Periodic::Update-Package-Lists "0";');
    expect(settings.every((line) => line.endsWith(' "0";'))).toBe(true);
  });

  it('keeps the journal in RAM with a budget', async () => {
    expect(await debugfsStat(built.img, '/etc/systemd/journald.conf.d/volatile.conf')).toMatchObject({
      type: 'regular',
      mode: 0o644,
      uid: 0,
      gid: 0,
    });
    const settings = first.journald.split('\n').filter((line) => line && !line.startsWith('#'));
    expect(settings).toEqual(['[Journal]', 'Storage=volatile', expect.stringMatching(/^RuntimeMaxUse=\d+M$/)]);
  });

  it('installs matching SSH host key pairs, private 0600, made in a 0700 secrets dir', async () => {
    for (const type of KEY_TYPES) {
      const name = `/etc/ssh/ssh_host_${type}_key`;
      expect(await debugfsStat(built.img, name)).toMatchObject({ type: 'regular', mode: 0o600, uid: 0, gid: 0 });
      expect(await debugfsStat(built.img, `${name}.pub`)).toMatchObject({ type: 'regular', mode: 0o644, uid: 0, gid: 0 });
      const dir = await tempDir();
      const privateFile = path.join(dir, 'key');
      await writeFile(privateFile, await debugfsCat(built.img, name), { mode: 0o600 });
      const derived = (await execFile('ssh-keygen', ['-y', '-f', privateFile])).stdout.split(' ').slice(0, 2);
      expect((await debugfsCat(built.img, `${name}.pub`)).split(' ').slice(0, 2)).toEqual(derived);
    }
    const fingerprints = first.keys.split('\n');
    expect(fingerprints[0]).toMatch(/^256 SHA256:\S+ root@c2-test \(ED25519\)$/);
    expect(fingerprints[1]).toMatch(/^256 SHA256:\S+ root@c2-test \(ECDSA\)$/);
    expect(fingerprints[2]).toMatch(/^3072 SHA256:\S+ root@c2-test \(RSA\)$/);

    const secrets = path.join(built.dir, 'secrets');
    expect((await stat(secrets)).mode & 0o777).toBe(0o700);
    expect((await stat(path.join(secrets, 'ssh'))).mode & 0o777).toBe(0o700);
    expect((await readdir(path.join(secrets, 'ssh'))).sort()).toEqual(
      KEY_TYPES.flatMap((t) => [`ssh_host_${t}_key`, `ssh_host_${t}_key.pub`]).sort(),
    );
    expect((await stat(path.join(secrets, 'ssh', 'ssh_host_rsa_key'))).mode & 0o777).toBe(0o600);
  });

  it('leaves both file systems clean and reports the step as applied', async () => {
    expect(await e2fsckClean(built.img)).toMatchObject({ ok: true });
    expect(await appliedOn(readonlyRoot, built.img)).toBe(true);
  });

  it('patching the output again changes nothing: one init=, same files, same keys', async () => {
    await patchFixture([readonlyRoot], CONFIG, { img: built.img, dir: built.dir });
    const again = await snapshot(built.img);
    expect(again).toEqual(first);
    expect(occurrences(again['boot.ini'], 'init=')).toBe(1);
    expect(occurrences(again['boot.ini.default'], 'init=')).toBe(1);
    expect(occurrences(again.fstab, 'ro')).toBe(occurrences(first.fstab, 'ro'));
    expect(await e2fsckClean(built.img)).toMatchObject({ ok: true });
    expect(await fsckFatClean(built.img)).toMatchObject({ ok: true });
  });

  it('a fresh image built with the same secrets gets the same host keys; new secrets, new keys', async () => {
    const shared = await patchFixture([readonlyRoot], CONFIG, { img: await copyOfStockImage('stock', await tempDir()), dir: built.dir });
    expect(await imageFingerprints(shared.img)).toEqual(first.keys.split('\n'));
    const fresh = await patchFixture([readonlyRoot], CONFIG);
    const freshKeys = await imageFingerprints(fresh.img);
    for (const [i, line] of freshKeys.entries()) expect(line).not.toBe(first.keys.split('\n')[i]);
  });
});

describe('readonly-root step on other images', () => {
  it('on a merged-/usr root (/sbin a link to usr/sbin) writes overlay-init where the link points', async () => {
    const mergeUsr: Step = {
      name: 'merge-usr',
      summary: 'make /sbin a link to usr/sbin, as Debian 12 and Ubuntu 20.04+ have it',
      plan: async () => [
        { op: 'symlink', on: 'rootfs', path: '/usr/sbin/init', target: '/lib/systemd/systemd' },
        { op: 'remove', on: 'rootfs', path: '/sbin/init' },
        { op: 'remove', on: 'rootfs', path: '/sbin' },
        { op: 'symlink', on: 'rootfs', path: '/sbin', target: 'usr/sbin' },
      ],
      applied: async () => false,
    };
    const { img } = await patchFixture([mergeUsr, readonlyRoot], CONFIG);
    expect(await debugfsStat(img, '/sbin')).toMatchObject({ type: 'symlink' });
    expect(await debugfsStat(img, '/usr/sbin/overlay-init')).toMatchObject({ type: 'regular', mode: 0o755, uid: 0, gid: 0 });
    expect((await e2fsckClean(img)).ok).toBe(true);
  });

  it('reports a stock image as not applied', async () => {
    const { img } = await patchFixture([]);
    expect(await appliedOn(readonlyRoot, img)).toBe(false);
  });

  it('a dry run makes no keys', async () => {
    const dir = await tempDir();
    const img = await copyOfStockImage('stock', dir);
    const secrets = path.join(dir, 'secrets');
    const result = await planImage(await openImage(img), resolveConfig({}), [readonlyRoot], { paths: { secrets, cache: dir } });
    expect(describeOperation(result.planned[0].operations.at(-1)!)).toMatch(
      /^secret {2}rootfs:\/etc\/ssh\/ssh_host_rsa_key.pub <- ssh\/ssh_host_rsa_key.pub/,
    );
    await expect(stat(secrets)).rejects.toMatchObject({ code: 'ENOENT' });
  });

  it('comments out swap and removes host keys the image shipped', async () => {
    const dir = await tempDir();
    const img = await copyOfStockImage('stock', dir);
    const fstab = path.join(dir, 'fstab');
    const swapLines = '/swapfile none swap sw 0 0\nUUID=0f1e2d3c-aaaa-bbbb-cccc-0123456789ab none swap defaults 0 0\n';
    await writeFile(fstab, (await debugfsCat(img, '/etc/fstab')) + swapLines);
    const stale = path.join(dir, 'stale');
    await writeFile(stale, 'a key every copy of the stock image shares\n');
    await debugfsWrite(img, [
      'rm /etc/fstab',
      `write ${fstab} /etc/fstab`,
      `write ${stale} /etc/ssh/ssh_host_dsa_key`,
      `write ${stale} /etc/ssh/ssh_host_dsa_key.pub`,
      `write ${stale} /etc/ssh/ssh_host_rsa_key`,
    ]);

    await patchFixture([readonlyRoot], CONFIG, { img, dir });
    const lines = (await debugfsCat(img, '/etc/fstab')).split('\n');
    expect(lines.slice(2, 4)).toEqual(
      swapLines
        .split('\n')
        .slice(0, 2)
        .map((line) => `#${line}`),
    );
    expect(await debugfsStat(img, '/etc/ssh/ssh_host_dsa_key')).toBeUndefined();
    expect(await debugfsStat(img, '/etc/ssh/ssh_host_dsa_key.pub')).toBeUndefined();
    expect(await debugfsCat(img, '/etc/ssh/ssh_host_rsa_key')).toMatch(/^-----BEGIN OPENSSH PRIVATE KEY-----\n/);
    expect(await e2fsckClean(img)).toMatchObject({ ok: true });
  });

  it('refuses an image without /sbin/init, before writing anything', async () => {
    const dir = await tempDir();
    const img = await copyOfStockImage('stock', dir);
    await debugfsWrite(img, ['rm /sbin/init']);
    const attempt = patchFixture([readonlyRoot], CONFIG, { img, dir });
    await expect(attempt).rejects.toThrow(UserError);
    await expect(attempt).rejects.toThrow(/no \/sbin\/init/);
    expect(await mtypeBoot(img, 'boot.ini')).toBe(referenceText('odroid-c2/boot.ini'));
  });

  it('on a C4 boot.ini, which mounts the root rw, makes it ro and adds init=', async () => {
    const { img } = await patchFixture([readonlyRoot], CONFIG, { variant: 'c4' });
    const stock = referenceText('odroid-c4/boot.ini');
    const args = bootargsOf(await mtypeBoot(img, 'boot.ini'))!.split(' ');
    const stockArgs = bootargsOf(stock)!.split(' ');
    expect(args).toEqual([...stockArgs.filter((arg) => arg !== 'rw'), 'ro', ...ADDED_ARGS.split(' ')]);
    expect(changedLines(stock, await mtypeBoot(img, 'boot.ini'))).toHaveLength(1);
    expect(await mtypeBoot(img, 'config.ini')).toBe(referenceText('odroid-c4/config.ini'));
    expect(await fsckFatClean(img)).toMatchObject({ ok: true });
  });
});

describe('protectFstab', () => {
  it('handles a FAT mounted elsewhere, rw options and lines without passno', () => {
    const text = '/dev/mmcblk0p1\t/boot\tvfat\trw,noatime,umask=0077\t0\t2\n/dev/mmcblk0p1 /mnt/fat vfat defaults\n';
    const once = protectFstab(text);
    expect(once).toBe('/dev/mmcblk0p1\t/boot\tvfat\tro,noatime,umask=0077\t0\t0\n/dev/mmcblk0p1 /mnt/fat vfat ro\n');
    expect(protectFstab(once)).toBe(once);
  });
});
