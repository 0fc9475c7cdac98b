/*
 * The release flow (README, "Release images"): the image a release publishes was built in CI with
 * CI's secrets/; it is a base. The user's own build with `--input <release>.img.xz` makes it
 * theirs: their CA and certificates, their SSH host keys, their authorized keys, and a host kit
 * that matches. Nothing of the release's secrets stays in a file of the image.
 */
import { execFileSync } from 'node:child_process';
import { mkdir, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeBundle } from './docker-bundle-fixture.js';
import { keyMatchesCertificate } from './kit-helpers.js';
import { buildImage } from './support/cli.js';
import { debugfsCat, debugfsDumpDir } from './support/debugfs.js';
import { e2fsckClean } from './support/fsck.js';
import { AUTHORIZED_KEY, SMALL_SIZE_MIB, stockImage, tempDir } from './support/images.js';

const NAME = 'odroid-c2-builder';

/** Every file under `dir`, recursively. */
async function filesUnder(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { recursive: true, withFileTypes: true });
  return entries.filter((entry) => entry.isFile()).map((entry) => join(entry.parentPath, entry.name));
}

/**
 * A piece of a key or certificate file that no other file holds by chance: 40 base64 characters
 * near the end (a signature, a private value; what precedes, names and algorithms, repeats across
 * files), or the end of a public key's blob.
 */
async function fingerprintOf(file: string): Promise<string> {
  const text = await readFile(file, 'utf8');
  if (file.endsWith('.pub')) return text.split(' ')[1].slice(-40);
  const body = text
    .split('\n')
    .filter((line) => !line.startsWith('-----'))
    .join('');
  return body.slice(-80, -40);
}

const verifies = (cert: string, ca: string) =>
  execFileSync('openssl', ['verify', '-CAfile', ca, cert], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] }).includes(': OK');

let dir: string;
let ciOut: string;
let userOut: string;
let image: string;
let ciKey: string;

beforeAll(async () => {
  dir = await tempDir();
  const bundle = join(dir, 'docker.tgz');
  await makeBundle(bundle);
  execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', 'ci@release', '-f', join(dir, 'ci-key')]);
  ciKey = (await readFile(join(dir, 'ci-key.pub'), 'utf8')).trim();
  const config = (key: string) => JSON.stringify({ docker: { bundle }, ssh: { authorizedKeys: [key] } });
  // The release, as CI makes it: its own secrets/ (and here a key, to see it go).
  ciOut = join(dir, 'ci');
  await writeFile(join(dir, 'ci.json'), config(ciKey));
  const release = await buildImage([
    '--input',
    await stockImage('stock', { sizeMiB: SMALL_SIZE_MIB }),
    '--out',
    ciOut,
    '--config',
    join(dir, 'ci.json'),
    '--release',
  ]);
  expect(release.code, release.stderr).toBe(0);
  // The user's build from the release's .img.xz, with a fresh --out: their own secrets/.
  userOut = join(dir, 'user');
  await writeFile(join(dir, 'user.json'), config(AUTHORIZED_KEY));
  const personal = await buildImage(['--input', join(ciOut, `${NAME}.img.xz`), '--out', userOut, '--config', join(dir, 'user.json')]);
  expect(personal.code, personal.stderr).toBe(0);
  image = join(userOut, `${NAME}.img`);
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('a release image personalised by the user’s build', () => {
  it('holds the user’s TLS CA and server certificate, not the release’s', async () => {
    const tls = join(dir, 'image-tls');
    await mkdir(tls);
    for (const file of ['ca.pem', 'server-cert.pem', 'server-key.pem']) {
      await writeFile(join(tls, file), await debugfsCat(image, `/etc/docker/tls/${file}`));
    }
    const userCa = join(userOut, 'secrets/tls/ca/cert.pem');
    expect(await readFile(join(tls, 'ca.pem'), 'utf8')).toBe(await readFile(userCa, 'utf8'));
    expect(verifies(join(tls, 'server-cert.pem'), userCa)).toBe(true);
    expect(() => verifies(join(tls, 'server-cert.pem'), join(ciOut, 'secrets/tls/ca/cert.pem'))).toThrow();
    expect(keyMatchesCertificate(join(tls, 'server-key.pem'), join(tls, 'server-cert.pem'))).toBe(true);
    // The kit the user's build wrote reaches this API: its client certificate is signed by the image's CA.
    expect(await readFile(join(userOut, 'host/tls/ca.pem'), 'utf8')).toBe(await readFile(userCa, 'utf8'));
    expect(verifies(join(userOut, 'host/tls/cert.pem'), join(tls, 'ca.pem'))).toBe(true);
  });

  it('holds the user’s SSH host keys, which the kit’s known_hosts names, and only the user’s authorized key', async () => {
    const knownHosts = await readFile(join(userOut, 'host/known_hosts'), 'utf8');
    for (const file of await readdir(join(userOut, 'secrets/ssh'))) {
      const inImage = await debugfsCat(image, `/etc/ssh/${file}`);
      expect(inImage, file).toBe(await readFile(join(userOut, 'secrets/ssh', file), 'utf8'));
      if (file.endsWith('.pub')) expect(knownHosts).toContain(inImage.split(' ').slice(0, 2).join(' '));
    }
    const keys = (await debugfsCat(image, '/root/.ssh/authorized_keys')).split('\n').filter((line) => line && !line.startsWith('#'));
    expect(keys).toEqual([AUTHORIZED_KEY]);
  });

  it('keeps none of the release’s secrets or keys in any file, and its file systems are clean', async () => {
    const secrets = [...(await filesUnder(join(ciOut, 'secrets'))), join(dir, 'ci-key.pub')];
    const marks = await Promise.all(secrets.map(fingerprintOf));
    for (const tree of ['/etc', '/root', '/home', '/usr/local', '/var']) {
      const copy = await debugfsDumpDir(image, tree);
      for (const file of await filesUnder(copy)) {
        if ((await stat(file)).size > 1 << 20) continue;
        // PEM breaks its base64 into lines: look for the piece across them.
        const text = (await readFile(file, 'latin1')).replaceAll('\n', '');
        marks.forEach((mark, i) => {
          expect(text.includes(mark), `${file} holds ${secrets[i]}`).toBe(false);
        });
      }
    }
    expect((await e2fsckClean(image)).ok).toBe(true);
  });
});
