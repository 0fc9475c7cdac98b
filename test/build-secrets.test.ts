/*
 * Whole builds into one --out: the host kit and the secrets beside the image, reused by the next
 * build and replaced by --rotate-secrets, and what the image lets in (Docker's API only with TLS,
 * SSH only with keys). Three builds in a row, each checked with the real tools.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { readdir, readFile, stat, writeFile } from 'node:fs/promises';
import { join, relative } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { configWithFakeBundle } from './docker-bundle-fixture.js';
import { keyMatchesCertificate } from './kit-helpers.js';
import { buildImage, type RunResult } from './support/cli.js';
import { debugfsCat, debugfsDumpDir, debugfsStat } from './support/debugfs.js';
import { AUTHORIZED_KEY, stockImage, tempDir } from './support/images.js';

const NAME = 'c2-test';

const fingerprint = (file: string) =>
  execFileSync('openssl', ['x509', '-noout', '-fingerprint', '-sha256', '-in', file], { encoding: 'utf8' }).trim();

/** Every file and directory under `dir` with its permission bits, as 'path 0755' ('dir/' for directories). */
async function modes(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { recursive: true });
  const line = async (path: string) => {
    const info = await stat(join(dir, path));
    return `${path}${info.isDirectory() && path !== '.' ? '/' : ''} ${(info.mode & 0o777).toString(8).padStart(4, '0')}`;
  };
  return (await Promise.all(['.', ...entries].map(line))).sort();
}

async function filesUnder(dir: string): Promise<{ path: string; text: string }[]> {
  const entries = await readdir(dir, { recursive: true, withFileTypes: true });
  return Promise.all(
    entries
      .filter((entry) => entry.isFile())
      .map(async (entry) => {
        const path = join(entry.parentPath, entry.name);
        return { path: relative(dir, path), text: await readFile(path, 'utf8') };
      }),
  );
}

interface Snapshot {
  run: RunResult;
  ca: string;
  sshHostKey: string;
}

let out: string;
let img: string;
let first: Snapshot;
let second: Snapshot;
let rotated: Snapshot;
let imageAfterSecond: { daemon: string; dirs: { etcDocker: string; units: string } };
let keysConfig: string;

async function build(config: string, extra: string[] = []): Promise<Snapshot> {
  const run = await buildImage(['--input', await stockImage('stock'), '--out', out, '--name', NAME, '--config', config, ...extra]);
  expect(run.stderr).not.toMatch(/internal error/);
  expect(run.code, run.stderr).toBe(0);
  return {
    run,
    ca: fingerprint(join(out, 'secrets/tls/ca/cert.pem')),
    sshHostKey: await readFile(join(out, 'secrets/ssh/ssh_host_ed25519_key.pub'), 'utf8'),
  };
}

beforeAll(async () => {
  out = await tempDir();
  img = join(out, `${NAME}.img`);
  first = await build(await configWithFakeBundle(await tempDir()));
  keysConfig = await configWithFakeBundle(await tempDir(), { ssh: { authorizedKeys: [AUTHORIZED_KEY] } });
  second = await build(keysConfig);
  imageAfterSecond = {
    daemon: await debugfsCat(img, '/etc/docker/daemon.json'),
    dirs: { etcDocker: await debugfsDumpDir(img, '/etc/docker'), units: await debugfsDumpDir(img, '/etc/systemd/system') },
  };
});

describe('build summary', () => {
  it('warns that a device built without ssh.authorizedKeys has no remote login, and only then', () => {
    expect(first.run.stdout).toMatch(/^ {2}warning {2}no ssh\.authorizedKeys: the device will have no remote login/m);
    expect(second.run.stdout).not.toMatch(/no ssh\.authorizedKeys/);
  });

  it('points at the host kit and the secrets', () => {
    expect(second.run.stdout).toContain(`  host     ${join(out, 'host')}: `);
    expect(second.run.stdout).toContain(`  secrets  ${join(out, 'secrets')}\n`);
  });
});

describe('after two builds', () => {
  it('reused the secrets: same CA, same SSH host keys', () => {
    expect(second.ca).toBe(first.ca);
    expect(second.sshHostKey).toBe(first.sshHostKey);
  });

  it('has the documented modes in out/host and out/secrets', async () => {
    expect(await modes(join(out, 'host'))).toEqual(
      [
        '. 0755',
        '.written-by-odroid-buildx-image 0644',
        `${NAME}.nmconnection 0600`,
        'README.md 0644',
        'exports 0644',
        'install.sh 0755',
        'known_hosts 0644',
        'nat.sh 0755',
        'setup-buildx.sh 0755',
        'doctor.sh 0755',
        'bench-buildx.sh 0755',
        'bench/ 0755',
        'bench/Dockerfile 0644',
        'bench/Makefile 0644',
        'bench/bench.c 0644',
        'tls/ 0700',
        'tls/ca.pem 0644',
        'tls/cert.pem 0644',
        'tls/key.pem 0600',
      ].sort(),
    );
    const secrets = await modes(join(out, 'secrets'));
    // Directories private, private keys 0600, certificates and public keys 0644.
    for (const line of secrets) {
      const [path, mode] = line.split(' ');
      if (path === '.' || path.endsWith('/')) expect(mode, path).toBe('0700');
      else if (path.endsWith('_key') || path.endsWith('key.pem')) expect(mode, path).toBe('0600');
      else expect(mode, path).toBe('0644');
    }
    expect(secrets).toContain('tls/ca/key.pem 0600');
    expect(secrets).toContain(`tls/server-${NAME}/key.pem 0600`);
    expect(secrets).toContain('ssh/ssh_host_ed25519_key 0600');
    expect((await readdir(out)).sort()).toEqual(['c2-test.img', 'host', 'secrets']);
  });

  it('made the image owner-only (0600), as it holds private keys, and the summary says why', async () => {
    expect(((await stat(img)).mode & 0o777).toString(8)).toBe('600');
    expect(second.run.stdout).toMatch(/^ {2}private {2}0600, owner only: the image holds the device's TLS server key and SSH host keys/m);
  });

  it("gave the image a server certificate for its address under the kit's CA, its key 0600 root:root", async () => {
    const dir = await debugfsDumpDir(img, '/etc/docker/tls');
    const ca = join(out, 'host/tls/ca.pem');
    expect(await readFile(join(dir, 'ca.pem'), 'utf8')).toBe(await readFile(ca, 'utf8'));
    const verify = spawnSync(
      'openssl',
      ['verify', '-CAfile', ca, '-verify_ip', '10.0.0.2', '-purpose', 'sslserver', join(dir, 'server-cert.pem')],
      { encoding: 'utf8' },
    );
    expect(verify.stdout).toContain(': OK');
    expect(await debugfsStat(img, '/etc/docker/tls/server-key.pem')).toMatchObject({ type: 'regular', mode: 0o600, uid: 0, gid: 0 });
    expect(keyMatchesCertificate(join(dir, 'server-key.pem'), join(dir, 'server-cert.pem'))).toBe(true);
  });

  it('lets nothing listen without TLS: hosts are the socket and tcp://<device>:2376 with tlsverify, no 2375, no -H', async () => {
    const daemon = JSON.parse(imageAfterSecond.daemon);
    expect(daemon.hosts).toEqual(['unix:///var/run/docker.sock', 'tcp://10.0.0.2:2376']);
    expect(daemon.tlsverify).toBe(true);
    const files = [...(await filesUnder(imageAfterSecond.dirs.etcDocker)), ...(await filesUnder(imageAfterSecond.dirs.units))];
    expect(files.map((file) => file.path)).toEqual(expect.arrayContaining(['daemon.json', 'docker.service']));
    for (const file of files) {
      expect(file.text, file.path).not.toMatch(/2375/);
      // Units and drop-ins: a listening flag next to daemon.json's hosts would stop dockerd.
      for (const line of file.text.split('\n').filter((l) => /^ExecStart=/.test(l))) {
        if (/dockerd/.test(line)) expect(line, file.path).not.toMatch(/\s(-H|--host)(\s|=)/);
      }
    }
    for (const path of ['/etc/default/docker', '/lib/systemd/system/docker.service', '/lib/systemd/system/docker.socket']) {
      expect(await debugfsStat(img, path), path).toBeUndefined();
    }
  });

  it("locked root's password and installed the configured key", async () => {
    expect(await debugfsCat(img, '/etc/shadow')).toMatch(/^root:\*:/m);
    expect((await debugfsCat(img, '/root/.ssh/authorized_keys')).split('\n')).toContain(AUTHORIZED_KEY);
    expect(await debugfsStat(img, '/root/.ssh/authorized_keys')).toMatchObject({ mode: 0o600, uid: 0, gid: 0 });
  });

  it('a failed --rotate-secrets build keeps the old secrets and host kit, and leaves no temp directory', async () => {
    const before = {
      secrets: await modes(join(out, 'secrets')),
      ca: fingerprint(join(out, 'secrets/tls/ca/cert.pem')),
      kit: await readFile(join(out, 'host/tls/cert.pem'), 'utf8'),
    };
    // A bundle checksum that cannot match stops the build in the docker step, after the rotation began.
    const config = JSON.parse(await readFile(keysConfig, 'utf8'));
    const failing = join(await tempDir(), 'failing.json');
    await writeFile(failing, JSON.stringify({ ...config, docker: { ...config.docker, sha256: 'ab'.repeat(32) } }));
    const run = await buildImage([
      '--input',
      await stockImage('stock'),
      '--out',
      out,
      '--name',
      NAME,
      '--config',
      failing,
      '--rotate-secrets',
    ]);
    expect(run.code).not.toBe(0);
    expect(run.stderr).toMatch(/^error: .*docker\.sha256/m);
    expect({
      secrets: await modes(join(out, 'secrets')),
      ca: fingerprint(join(out, 'secrets/tls/ca/cert.pem')),
      kit: await readFile(join(out, 'host/tls/cert.pem'), 'utf8'),
    }).toEqual(before);
    expect((await readdir(out)).sort()).toEqual(['c2-test.img', 'host', 'secrets']);
  });

  it('a dry run with --rotate-secrets changes nothing', async () => {
    const before = { secrets: await modes(join(out, 'secrets')), ca: fingerprint(join(out, 'secrets/tls/ca/cert.pem')) };
    const run = await buildImage([
      '--input',
      await stockImage('stock'),
      '--out',
      out,
      '--name',
      NAME,
      '--config',
      keysConfig,
      '--dry-run',
      '--rotate-secrets',
    ]);
    expect(run.code).toBe(0);
    expect({ secrets: await modes(join(out, 'secrets')), ca: fingerprint(join(out, 'secrets/tls/ca/cert.pem')) }).toEqual(before);
  });
});

describe('--rotate-secrets', () => {
  beforeAll(async () => {
    rotated = await build(keysConfig, ['--rotate-secrets']);
  });

  it('makes a new CA and new SSH host keys, and says so', () => {
    expect(rotated.ca).not.toBe(second.ca);
    expect(rotated.sshHostKey).not.toBe(second.sshHostKey);
    expect(rotated.run.stdout).toMatch(/^ {2}secrets .*\(rotated/m);
  });

  it('puts the new CA in the image and the host kit alike, and leaves no temp directory', async () => {
    const kitCa = join(out, 'host/tls/ca.pem');
    expect(fingerprint(kitCa)).toBe(rotated.ca);
    const dir = await debugfsDumpDir(img, '/etc/docker/tls');
    expect(fingerprint(join(dir, 'ca.pem'))).toBe(rotated.ca);
    expect(spawnSync('openssl', ['verify', '-CAfile', kitCa, join(out, 'host/tls/cert.pem')]).status).toBe(0);
    expect(spawnSync('openssl', ['verify', '-CAfile', kitCa, '-verify_ip', '10.0.0.2', join(dir, 'server-cert.pem')]).status).toBe(0);
    expect(await debugfsCat(img, '/etc/ssh/ssh_host_ed25519_key.pub')).toBe(rotated.sshHostKey);
    expect((await readdir(out)).sort()).toEqual(['c2-test.img', 'host', 'secrets']);
  });
});
