import { spawnSync } from 'node:child_process';
import { chmod, chown, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { resolveConfig } from '../../src/config/load.js';
import { renderTemplate } from '../../src/engine/templates.js';
import { UserError } from '../../src/errors.js';
import { accountsWithPassword, lockPasswords } from '../../src/formats/shadow.js';
import { setSshdBlock } from '../../src/formats/sshd-config.js';
import { remoteAccess, remoteLoginWarning } from '../../src/steps/remote-access.js';
import { debugfsBatch, debugfsCat, debugfsStat } from '../support/debugfs.js';
import { e2fsckClean } from '../support/fsck.js';
import { AUTHORIZED_KEY, copyOfStockImage, stockImage, tempDir } from '../support/images.js';
import { type PatchedFixture, patchFixture } from './patch-fixture.js';
import { appliedOn } from './probe.js';

const OTHER_KEY =
  'ecdsa-sha2-nistp256 AAAAE2VjZHNhLXNoYTItbmlzdHAyNTYAAAAIbmlzdHAyNTYAAABBBItPPQ/MPe/X8MhczXouB+YGBQPAEAG42BQFnzWJn67RJWTr2FMhfWeR8RFPlzPkiZWMk1rWrSX5rnCT9UhJQMI= other@laptop';
const BLOCK = '# BEGIN odroid-buildx-image (x)\nPasswordAuthentication no\nPermitRootLogin prohibit-password\n# END odroid-buildx-image\n';

/**
 * sshd's effective settings for a config file (`sshd -T`), the way the daemon itself reads it.
 * As root, sshd insists on its privilege-separation directory even in test mode, so it runs as
 * nobody on files nobody can read.
 */
async function sshdEffective(config: string, connection?: string): Promise<Record<string, string>> {
  const dir = await tempDir();
  const configFile = join(dir, 'sshd_config');
  const hostKey = join(dir, 'host_key');
  await writeFile(configFile, config);
  expect(spawnSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', hostKey]).status).toBe(0);
  const root = process.getuid?.() === 0;
  if (root) {
    await chmod(dir, 0o755);
    for (const file of [configFile, hostKey]) await chown(file, 65534, 65534);
  }
  const sshd = ['/usr/sbin/sshd', '-T', '-f', configFile, '-h', hostKey, ...(connection ? ['-C', connection] : [])];
  const run = root
    ? spawnSync('setpriv', ['--reuid=65534', '--regid=65534', '--clear-groups', ...sshd], { encoding: 'utf8' })
    : spawnSync(sshd[0], sshd.slice(1), { encoding: 'utf8' });
  expect(run.error, 'sshd (openssh-server) must be installed').toBeUndefined();
  expect(run.status, run.stderr).toBe(0);
  return Object.fromEntries(
    run.stdout
      .split('\n')
      .filter(Boolean)
      .map((line) => [line.split(' ')[0], line.slice(line.indexOf(' ') + 1)]),
  );
}

const FILES = ['/etc/shadow', '/etc/ssh/sshd_config', '/root/.ssh/authorized_keys'];
const snapshot = (img: string) => Promise.all(FILES.map(async (file) => [await debugfsStat(img, file), await debugfsCat(img, file)]));

let patched: PatchedFixture;
let stockShadow: string;
beforeAll(async () => {
  patched = await patchFixture([remoteAccess], { ssh: { authorizedKeys: [AUTHORIZED_KEY, `${OTHER_KEY}\n`] } });
  stockShadow = await debugfsCat(await stockImage('stock'), '/etc/shadow');
});

describe('remote-access step on a stock-like image', () => {
  it("removes root's password (*) and locks every other account (!*), leaving the rest of /etc/shadow", async () => {
    const shadow = await debugfsCat(patched.img, '/etc/shadow');
    expect(stockShadow).toMatch(/^root:\$6\$/m);
    expect(stockShadow).toMatch(/^odroid:\$6\$/m);
    expect(accountsWithPassword(stockShadow)).toEqual(['root', 'odroid']);
    expect(shadow).toMatch(/^root:\*:18122:0:99999:7:::$/m);
    expect(shadow).toMatch(/^odroid:!\*:18122:0:99999:7:::$/m);
    expect(shadow).not.toMatch(/\$6\$/);
    expect(accountsWithPassword(shadow)).toEqual([]);
    // Every account but root is locked as passwd -l locks one, which sshd without PAM also honours.
    const fields = (text: string) =>
      text
        .split('\n')
        .filter(Boolean)
        .map((line) => line.split(':'));
    for (const [name, password] of fields(shadow)) if (name !== 'root') expect(password, name).toMatch(/^!/);
    const rest = (text: string) => fields(text).map(([name, , ...others]) => [name, ...others]);
    expect(rest(shadow)).toEqual(rest(stockShadow));
    // Still readable by group shadow only, as passwd and PAM expect.
    expect(await debugfsStat(patched.img, '/etc/shadow')).toMatchObject({ type: 'regular', mode: 0o640, uid: 0, gid: 42 });
  });

  it('installs ssh.authorizedKeys for root: 0700 directory, 0600 file, one key a line', async () => {
    expect(await debugfsStat(patched.img, '/root/.ssh')).toMatchObject({ type: 'directory', mode: 0o700, uid: 0, gid: 0 });
    expect(await debugfsStat(patched.img, '/root/.ssh/authorized_keys')).toMatchObject({ type: 'regular', mode: 0o600, uid: 0, gid: 0 });
    const keys = (await debugfsCat(patched.img, '/root/.ssh/authorized_keys')).split('\n').filter((line) => line && !line.startsWith('#'));
    expect(keys).toEqual([AUTHORIZED_KEY, OTHER_KEY]);
  });

  it('makes sshd take keys only and root only by key, whatever the stock file said later', async () => {
    const config = await debugfsCat(patched.img, '/etc/ssh/sshd_config');
    expect(config).toMatch(/^# BEGIN odroid-buildx-image/);
    expect(config).toMatch(/^#PermitRootLogin yes$/m);
    expect(config).not.toMatch(/^PermitRootLogin yes$/m);
    const effective = await sshdEffective(config);
    expect(effective).toMatchObject({
      passwordauthentication: 'no',
      // sshd -T prints prohibit-password by its older name.
      permitrootlogin: 'without-password',
      kbdinteractiveauthentication: 'no',
      permitemptypasswords: 'no',
      pubkeyauthentication: 'yes',
      // Only the file the build writes: no authorized_keys2, no stock location.
      authorizedkeysfile: '.ssh/authorized_keys',
    });
    expect(await e2fsckClean(patched.img)).toMatchObject({ ok: true });
  });

  it('is idempotent: a second run changes nothing', async () => {
    const fixture = await patchFixture([remoteAccess], { ssh: { authorizedKeys: [AUTHORIZED_KEY] } });
    const before = await snapshot(fixture.img);
    const again = await patchFixture([remoteAccess], { ssh: { authorizedKeys: [AUTHORIZED_KEY] } }, { img: fixture.img, dir: fixture.dir });
    expect(again.result.bytesWritten).toBe(Buffer.byteLength(before[2][1] as string));
    expect(await snapshot(fixture.img)).toEqual(before);
    expect((await debugfsCat(fixture.img, '/etc/ssh/sshd_config')).match(/# BEGIN odroid-buildx-image/g)).toHaveLength(1);
  });

  it('without keys leaves root no way in and says so', async () => {
    const fixture = await patchFixture([remoteAccess], {});
    const keys = (await debugfsCat(fixture.img, '/root/.ssh/authorized_keys')).split('\n').filter((line) => line && !line.startsWith('#'));
    expect(keys).toEqual([]);
    expect(await debugfsCat(fixture.img, '/etc/shadow')).toMatch(/^root:\*:/m);
    expect(remoteLoginWarning(resolveConfig({}))).toMatch(/no ssh\.authorizedKeys: the device will have no remote login/);
    expect(remoteLoginWarning(resolveConfig({ ssh: { authorizedKeys: [AUTHORIZED_KEY] } }))).toBeUndefined();
  });

  it("removes every key a stock account had (odroid's, root's authorized_keys2): only ssh.authorizedKeys open the device", async () => {
    const dir = await tempDir();
    const img = await copyOfStockImage('stock', dir);
    const keyFile = join(dir, 'stock-key');
    await writeFile(keyFile, `${OTHER_KEY}\n`);
    const planted = ['/home/odroid/.ssh/authorized_keys', '/home/odroid/.ssh/authorized_keys2', '/root/.ssh/authorized_keys2'];
    await debugfsBatch(
      img,
      ['mkdir /home/odroid', 'mkdir /home/odroid/.ssh', 'mkdir /root/.ssh', ...planted.map((path) => `write ${keyFile} ${path}`)],
      { write: true },
    );
    for (const path of planted) expect(await debugfsStat(img, path), path).toBeDefined();
    const fixture = await patchFixture([remoteAccess], { ssh: { authorizedKeys: [AUTHORIZED_KEY] } }, { img, dir });
    for (const path of planted) expect(await debugfsStat(fixture.img, path), path).toBeUndefined();
    expect(await debugfsCat(fixture.img, '/root/.ssh/authorized_keys')).toContain(AUTHORIZED_KEY);
    expect(await e2fsckClean(fixture.img)).toMatchObject({ ok: true });
  });

  it('follows a symlinked /etc/ssh/sshd_config and /etc/shadow inside the image, and names a loop', async () => {
    const dir = await tempDir();
    const img = await copyOfStockImage('stock', dir);
    await debugfsBatch(
      img,
      [
        // debugfs's ln and unlink leave the link count alone: together, a rename.
        'ln /etc/ssh/sshd_config /etc/ssh/sshd_config.stock',
        'unlink /etc/ssh/sshd_config',
        'symlink /etc/ssh/sshd_config sshd_config.stock',
        'mkdir /etc/real',
        'ln /etc/shadow /etc/real/shadow',
        'unlink /etc/shadow',
        'symlink /etc/shadow /etc/real/shadow',
      ],
      { write: true },
    );
    const fixture = await patchFixture([remoteAccess], { ssh: { authorizedKeys: [AUTHORIZED_KEY] } }, { img, dir });
    expect(await debugfsStat(fixture.img, '/etc/ssh/sshd_config')).toMatchObject({ type: 'symlink' });
    const effective = await sshdEffective(await debugfsCat(fixture.img, '/etc/ssh/sshd_config.stock'));
    expect(effective).toMatchObject({ passwordauthentication: 'no', permitrootlogin: 'without-password' });
    expect(await debugfsCat(fixture.img, '/etc/real/shadow')).toMatch(/^root:\*:/m);
    expect(await appliedOn(remoteAccess, fixture.img)).toBe(true);

    const looped = await copyOfStockImage('stock', await tempDir());
    await debugfsBatch(looped, ['rm /etc/ssh/sshd_config', 'symlink /etc/ssh/sshd_config sshd_config'], { write: true });
    await expect(patchFixture([remoteAccess], {}, { img: looped })).rejects.toThrow(
      /\/etc\/ssh\/sshd_config in the root file system is a symlink loop/,
    );
  });

  it('reports itself applied on the patched image and not on the stock one', async () => {
    expect(await appliedOn(remoteAccess, patched.img)).toBe(true);
    expect(await appliedOn(remoteAccess, await copyOfStockImage('stock', await tempDir()))).toBe(false);
  });
});

describe('lockPasswords', () => {
  it("sets root's password field to * and every other account's to !* unless !-locked already, and only that field", () => {
    const shadow =
      'daemon:*:1:0:99999:7:::\nroot:$6$x$y:18122:0:99999:7:::\nodroid:$1$a$b:1::::::\nold:!$6$x$y:1::::::\nopen::1::::::\nlocked:!:1::::::\nnew:!*:1::::::\n';
    expect(accountsWithPassword(shadow)).toEqual(['root', 'odroid', 'old', 'open']);
    expect(lockPasswords(shadow)).toBe(
      'daemon:!*:1:0:99999:7:::\nroot:*:18122:0:99999:7:::\nodroid:!*:1::::::\nold:!$6$x$y:1::::::\nopen:!*:1::::::\nlocked:!:1::::::\nnew:!*:1::::::\n',
    );
    // root's ! lock would also shut out its keys where sshd runs without PAM.
    expect(lockPasswords('root:!:1::::::\n')).toBe('root:*:1::::::\n');
  });

  it('refuses a shadow file without root', () => {
    expect(() => lockPasswords('daemon:*:1:0:99999:7:::\n')).toThrow(UserError);
  });
});

describe('setSshdBlock', () => {
  it('leads with the block and comments out the same keywords in any case or = form, inside Match blocks too', () => {
    const config =
      'Port 22\npasswordauthentication yes\nPermitRootLogin=yes\nMatch User git\n  PasswordAuthentication yes\n  X11Forwarding no\n';
    expect(setSshdBlock(config, BLOCK)).toBe(
      `${BLOCK}Port 22\n#passwordauthentication yes\n#PermitRootLogin=yes\nMatch User git\n#  PasswordAuthentication yes\n  X11Forwarding no\n`,
    );
  });

  it('leaves no way around the keys for any user: a stock CA, key command, host-based login or Match block (sshd -T)', async () => {
    const stock = [
      'TrustedUserCAKeys /etc/ssh/ca.pub',
      'AuthorizedKeysCommand /usr/bin/fetch-keys %u',
      'AuthorizedKeysCommandUser nobody',
      'HostbasedAuthentication yes',
      'Match User odroid',
      '  AuthorizedKeysFile /etc/ssh/keys/%u',
      '  PasswordAuthentication yes',
      '',
    ].join('\n');
    const block = await renderTemplate('remote-access/etc/ssh/sshd_config.mustache', {
      begin: '# BEGIN odroid-buildx-image',
      end: '# END odroid-buildx-image',
    });
    const patched = setSshdBlock(stock, block);
    for (const user of ['odroid', 'root']) {
      const effective = await sshdEffective(patched, `user=${user},host=laptop,addr=10.0.0.1`);
      expect(effective, user).toMatchObject({
        passwordauthentication: 'no',
        authorizedkeysfile: '.ssh/authorized_keys',
        authorizedkeyscommand: 'none',
        trustedusercakeys: 'none',
        hostbasedauthentication: 'no',
      });
    }
  });

  it('replaces its own earlier block instead of adding another', () => {
    const once = setSshdBlock('Port 22\n', BLOCK);
    expect(setSshdBlock(once, BLOCK)).toBe(once);
    const changed = BLOCK.replace('PermitRootLogin prohibit-password', 'PermitRootLogin no');
    expect(setSshdBlock(once, changed)).toBe(`${changed}Port 22\n`);
  });
});
