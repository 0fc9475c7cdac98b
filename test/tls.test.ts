import { spawnSync } from 'node:child_process';
import { cp, readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { UserError } from '../src/errors.js';
import { type TlsMaterial, tlsMaterial } from '../src/secrets/tls.js';
import { keyMatchesCertificate } from './kit-helpers.js';
import { tempDir } from './support/images.js';

const DEVICE = { name: 'c2-test', hostname: 'c2-test', ip: '10.0.0.2' };

/** Runs openssl on PEM text given as files in `dir`. */
function openssl(args: string[]): { status: number | null; out: string } {
  const run = spawnSync('openssl', args, { encoding: 'utf8' });
  return { status: run.status, out: run.stdout + run.stderr };
}

async function pemFile(dir: string, name: string, text: string): Promise<string> {
  const file = join(dir, name);
  await writeFile(file, text);
  return file;
}

let secrets: string;
let files: string;
let tls: TlsMaterial;
beforeAll(async () => {
  secrets = join(await tempDir(), 'secrets');
  files = await tempDir();
  tls = await tlsMaterial(secrets, DEVICE);
});

describe('tlsMaterial', () => {
  it('makes a CA that openssl verifies the server and client certificates against', async () => {
    const ca = await pemFile(files, 'ca.pem', tls.ca);
    for (const [name, text] of [
      ['server.pem', tls.server.cert],
      ['client.pem', tls.client.cert],
    ]) {
      const check = openssl(['verify', '-CAfile', ca, await pemFile(files, name, text)]);
      expect(check.out).toContain(': OK');
      expect(check.status).toBe(0);
    }
    const text = openssl(['x509', '-noout', '-text', '-in', ca]).out;
    expect(text).toMatch(/CA:TRUE, pathlen:0/);
    expect(text).toMatch(/Certificate Sign, CRL Sign/);
  });

  it('names the device address and host name in the server certificate, for server use only', async () => {
    const server = await pemFile(files, 'server.pem', tls.server.cert);
    const ext = openssl(['x509', '-noout', '-ext', 'subjectAltName,extendedKeyUsage,basicConstraints', '-in', server]).out;
    expect(ext).toMatch(/IP Address:10\.0\.0\.2/);
    expect(ext).toMatch(/DNS:c2-test/);
    expect(ext).toMatch(/TLS Web Server Authentication/);
    expect(ext).not.toMatch(/Client Authentication/);
    expect(ext).toMatch(/CA:FALSE/);
    // openssl's own check of the name the host dials.
    expect(
      openssl(['verify', '-CAfile', await pemFile(files, 'ca.pem', tls.ca), '-verify_ip', '10.0.0.2', '-purpose', 'sslserver', server])
        .status,
    ).toBe(0);
    expect(openssl(['verify', '-CAfile', join(files, 'ca.pem'), '-verify_ip', '10.0.0.3', server]).status).not.toBe(0);
  });

  it('gives the client certificate clientAuth only, so it cannot pose as the device', async () => {
    const client = await pemFile(files, 'client.pem', tls.client.cert);
    const ext = openssl(['x509', '-noout', '-ext', 'extendedKeyUsage', '-in', client]).out;
    expect(ext).toMatch(/TLS Web Client Authentication/);
    expect(ext).not.toMatch(/Server Authentication/);
    const ca = await pemFile(files, 'ca.pem', tls.ca);
    expect(openssl(['verify', '-CAfile', ca, '-purpose', 'sslclient', client]).status).toBe(0);
    expect(openssl(['verify', '-CAfile', ca, '-purpose', 'sslserver', client]).status).not.toBe(0);
  });

  it('pairs every certificate with its key, and keeps validity clear of the clock-less board', async () => {
    for (const [name, pair] of Object.entries({ server: tls.server, client: tls.client })) {
      const cert = await pemFile(files, `${name}.pem`, pair.cert);
      const key = await pemFile(files, `${name}-key.pem`, pair.key);
      expect(keyMatchesCertificate(key, cert), name).toBe(true);
      const dates = openssl(['x509', '-noout', '-startdate', '-enddate', '-in', cert]).out;
      expect(dates).toMatch(/notBefore=Jan {2}1 00:00:00 1970 GMT/);
      expect(dates).toMatch(/notAfter=Dec 31 23:59:59 9999 GMT/);
    }
  });

  it('keeps keys 0600 and directories 0700 in the secrets', async () => {
    const mode = async (path: string) => (await stat(path)).mode & 0o777;
    expect(await mode(secrets)).toBe(0o700);
    expect(await mode(join(secrets, 'tls'))).toBe(0o700);
    for (const pair of ['ca', 'client', `server-${DEVICE.name}`]) {
      expect(await mode(join(secrets, 'tls', pair)), pair).toBe(0o700);
      expect(await mode(join(secrets, 'tls', pair, 'key.pem')), pair).toBe(0o600);
      expect(await mode(join(secrets, 'tls', pair, 'cert.pem')), pair).toBe(0o644);
    }
  });

  it('reuses everything on the next call', async () => {
    expect(await tlsMaterial(secrets, DEVICE)).toEqual(tls);
  });

  it('reissues only the server certificate when the device address changes, under the same CA', async () => {
    const dir = join(await tempDir(), 'secrets');
    const first = await tlsMaterial(dir, DEVICE);
    const moved = await tlsMaterial(dir, { ...DEVICE, ip: '192.168.7.2' });
    expect(moved.ca).toBe(first.ca);
    expect(moved.client).toEqual(first.client);
    expect(moved.server.cert).not.toBe(first.server.cert);
    const ca = await pemFile(files, 'moved-ca.pem', moved.ca);
    const server = await pemFile(files, 'moved.pem', moved.server.cert);
    expect(openssl(['verify', '-CAfile', ca, '-verify_ip', '192.168.7.2', server]).status).toBe(0);
    expect(await tlsMaterial(dir, { ...DEVICE, ip: '192.168.7.2' })).toEqual(moved);
  });

  it('keeps one CA for several devices, each with its own server certificate', async () => {
    const dir = join(await tempDir(), 'secrets');
    const a = await tlsMaterial(dir, DEVICE);
    const b = await tlsMaterial(dir, { name: 'c2-other', hostname: 'c2-other', ip: '10.0.1.2' });
    expect(b.ca).toBe(a.ca);
    expect(b.client).toEqual(a.client);
    expect(b.server.key).not.toBe(a.server.key);
    expect(await tlsMaterial(dir, DEVICE)).toEqual(a);
  });

  it('issues new leaves under a CA that was replaced by hand', async () => {
    const dir = join(await tempDir(), 'secrets');
    const first = await tlsMaterial(dir, DEVICE);
    const otherDir = join(await tempDir(), 'secrets');
    const other = await tlsMaterial(otherDir, DEVICE);
    await cp(join(otherDir, 'tls', 'ca'), join(dir, 'tls', 'ca'), { recursive: true });
    const after = await tlsMaterial(dir, DEVICE);
    expect(after.ca).toBe(other.ca);
    expect(after.client.cert).not.toBe(first.client.cert);
    expect(after.server.cert).not.toBe(first.server.cert);
    const ca = await pemFile(files, 'replaced-ca.pem', after.ca);
    for (const [name, text] of [
      ['replaced-server.pem', after.server.cert],
      ['replaced-client.pem', after.client.cert],
    ]) {
      expect(openssl(['verify', '-CAfile', ca, await pemFile(files, name, text)]).status, name).toBe(0);
    }
  });

  it('refuses a key it cannot read, naming the file and the way out', async () => {
    const dir = join(await tempDir(), 'secrets');
    await tlsMaterial(dir, DEVICE);
    await writeFile(join(dir, 'tls', 'client', 'key.pem'), 'not a key\n');
    await expect(tlsMaterial(dir, DEVICE)).rejects.toThrow(/client\/key\.pem is not an ECDSA P-256 private key.*--rotate-secrets/);
  });
});

describe('tlsMaterial refuses a key that does not belong to its certificate', () => {
  it.each(['ca', 'client', `server-${DEVICE.name}`])('in %s, naming both files and the way out', async (pair) => {
    const dir = join(await tempDir(), 'secrets');
    await tlsMaterial(dir, DEVICE);
    const otherDir = join(await tempDir(), 'secrets');
    await tlsMaterial(otherDir, DEVICE);
    const keyFile = join(dir, 'tls', pair, 'key.pem');
    await cp(join(otherDir, 'tls', pair, 'key.pem'), keyFile);
    const before = await readFile(keyFile, 'utf8');
    const error = await tlsMaterial(dir, DEVICE).then(
      () => undefined,
      (caught: Error) => caught,
    );
    expect(error).toBeInstanceOf(UserError);
    expect(error?.message).toBe(
      `${keyFile} is not the key of ${join(dir, 'tls', pair, 'cert.pem')}, so certificates made or presented with it would not verify; restore the key that belongs to the certificate, or build with --rotate-secrets to make new ones (then reinstall the host kit)`,
    );
    expect(await readFile(keyFile, 'utf8')).toBe(before);
  });
});
