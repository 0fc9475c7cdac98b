/**
 * The mutual-TLS material of the device's Docker API: one CA, a client certificate for the host
 * and a server certificate per device, made once with @peculiar/x509 (over Node's WebCrypto) and
 * kept in the build's secrets directory, so a rebuild never makes the host trust anything new.
 * Nothing here knows the image.
 */
// @peculiar/x509 2.x resolves its classes through tsyringe, which throws at import time unless a
// Reflect metadata polyfill was loaded first; ES modules evaluate imports in order.
import 'reflect-metadata';
import { randomBytes, webcrypto } from 'node:crypto';
import { readFile, rename } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import * as x509 from '@peculiar/x509';
import { UserError } from '../errors.js';
import { exists, writeFile } from '../files.js';
import { replaceDir, withScratchDir } from '../output/pending-dir.js';
import { killPoint } from '../timing.js';
import { privateDir } from './ssh-host-keys.js';

/** Docker's registered port for its TLS API; 2375, the plain one, is never used. */
export const DOCKER_TLS_PORT = 2376;

x509.cryptoProvider.set(webcrypto as unknown as Crypto);

/** ECDSA P-256 with SHA-256: what Go's crypto/tls (dockerd, the docker CLI) and OpenSSL all take. */
const KEY_ALGORITHM = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' } as const;
/**
 * The C2 has no real-time clock: until NTP answers through the host it boots at systemd's build
 * date or earlier, and dockerd checks the client's certificate against that clock. So validity
 * starts at the epoch. It never ends (RFC 5280's 99991231235959Z): new keys come from
 * --rotate-secrets, not from a date nobody will remember.
 */
const NOT_BEFORE = new Date(Date.UTC(1970, 0, 1));
const NOT_AFTER = new Date(Date.UTC(9999, 11, 31, 23, 59, 59));
/** Docker's own guide names the client "client"; dockerd does not look at the name. */
const CLIENT_NAME = 'CN=client';
const CA_NAME = 'CN=odroid-buildx-image CA';

/** One certificate and its private key, PEM. */
export interface TlsIdentity {
  cert: string;
  key: string;
}

export interface TlsMaterial {
  /** The CA certificate both ends trust (its key stays in the secrets). */
  ca: string;
  /** Presented by dockerd on the device. */
  server: TlsIdentity;
  /** Presented by the host's docker CLI. */
  client: TlsIdentity;
}

/** What the server certificate must name: the address the host dials, and the host name. */
export interface TlsDevice {
  name: string;
  hostname: string;
  ip: string;
}

interface Loaded {
  cert: x509.X509Certificate;
  key: CryptoKey;
  pem: TlsIdentity;
}

const CERT_FILE = 'cert.pem';
const KEY_FILE = 'key.pem';

/** A positive serial of 127 random bits: RFC 5280 allows 20 octets, Go refuses negative ones. */
function serialNumber(): string {
  const bytes = randomBytes(16);
  bytes[0] &= 0x7f;
  return bytes.toString('hex');
}

async function newKeys(): Promise<CryptoKeyPair> {
  return (await webcrypto.subtle.generateKey(KEY_ALGORITHM, true, ['sign', 'verify'])) as CryptoKeyPair;
}

async function importKey(pem: string, file: string): Promise<CryptoKey> {
  try {
    return await webcrypto.subtle.importKey('pkcs8', x509.PemConverter.decode(pem)[0], KEY_ALGORITHM, true, ['sign']);
  } catch {
    throw new UserError(
      `${file} is not an ECDSA P-256 private key (PKCS#8 PEM); delete its directory to have a new pair made, or build with --rotate-secrets`,
    );
  }
}

/** The public point of a P-256 key as JWK x/y, to compare a private key with a certificate. */
async function publicPoint(key: CryptoKey): Promise<string> {
  const { x, y } = await webcrypto.subtle.exportKey('jwk', key);
  return `${x}.${y}`;
}

/**
 * A key copied in from another pair signs (the CA) or presents (a leaf) what the certificate
 * beside it cannot vouch for: every certificate made or shown would fail verification.
 */
async function checkPairMatches(dir: string, cert: x509.X509Certificate, key: CryptoKey): Promise<void> {
  const certKey = await cert.publicKey.export(KEY_ALGORITHM, ['verify']).then(publicPoint, () => undefined);
  if (certKey !== (await publicPoint(key))) {
    throw new UserError(
      `${join(dir, KEY_FILE)} is not the key of ${join(dir, CERT_FILE)}, so certificates made or presented with it would not verify; restore the key that belongs to the certificate, or build with --rotate-secrets to make new ones (then reinstall the host kit)`,
    );
  }
}

async function pemOf(cert: x509.X509Certificate, key: CryptoKey): Promise<TlsIdentity> {
  const pkcs8 = await webcrypto.subtle.exportKey('pkcs8', key);
  return { cert: `${cert.toString('pem')}\n`, key: `${x509.PemConverter.encode(pkcs8, 'PRIVATE KEY')}\n` };
}

async function load(dir: string): Promise<Loaded | undefined> {
  const certFile = join(dir, CERT_FILE);
  const keyFile = join(dir, KEY_FILE);
  if (!(await exists(dir))) return undefined;
  if (!(await exists(certFile)) || !(await exists(keyFile))) {
    throw new UserError(`${dir} lacks ${CERT_FILE} or ${KEY_FILE}; delete ${dir} to have a new pair made`);
  }
  const pem = { cert: await readFile(certFile, 'utf8'), key: await readFile(keyFile, 'utf8') };
  let cert: x509.X509Certificate;
  try {
    cert = new x509.X509Certificate(pem.cert);
  } catch {
    throw new UserError(`${certFile} is not a PEM certificate; delete ${dir} to have a new pair made`);
  }
  const key = await importKey(pem.key, keyFile);
  await checkPairMatches(dir, cert, key);
  return { cert, key, pem };
}

/**
 * Writes a key pair into a fresh directory beside `dir` and renames it into place, so `dir` is
 * always a matching pair. Returns false when another build placed one first (then use that).
 */
async function store(dir: string, pem: TlsIdentity, replace: boolean): Promise<boolean> {
  return withScratchDir(dirname(dir), async (scratch) => {
    await writeFile(join(scratch, KEY_FILE), pem.key, { mode: 0o600 });
    killPoint('tls');
    await writeFile(join(scratch, CERT_FILE), pem.cert, { mode: 0o644 });
    if (replace) {
      await replaceDir(scratch, dir);
      return true;
    }
    return rename(scratch, dir).then(
      () => true,
      (error: NodeJS.ErrnoException) => {
        if (error.code === 'ENOTEMPTY' || error.code === 'EEXIST') return false;
        throw error;
      },
    );
  });
}

async function issued(ca: Loaded, cert: x509.X509Certificate): Promise<boolean> {
  return cert.issuer === ca.cert.subject && (await cert.verify({ publicKey: ca.cert.publicKey, signatureOnly: true }));
}

type Profile = { subject: string; extensions: x509.Extension[] };

async function issue(ca: Loaded, profile: Profile): Promise<{ cert: x509.X509Certificate; key: CryptoKey }> {
  const keys = await newKeys();
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber: serialNumber(),
    subject: profile.subject,
    issuer: ca.cert.subject,
    notBefore: NOT_BEFORE,
    notAfter: NOT_AFTER,
    publicKey: keys.publicKey,
    signingKey: ca.key,
    signingAlgorithm: KEY_ALGORITHM,
    extensions: [
      new x509.BasicConstraintsExtension(false, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
      ...profile.extensions,
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
      await x509.AuthorityKeyIdentifierExtension.create(ca.cert.publicKey),
    ],
  });
  return { cert, key: keys.privateKey };
}

async function makeCa(): Promise<{ cert: x509.X509Certificate; key: CryptoKey }> {
  const keys = await newKeys();
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: serialNumber(),
    name: CA_NAME,
    keys,
    notBefore: NOT_BEFORE,
    notAfter: NOT_AFTER,
    signingAlgorithm: KEY_ALGORITHM,
    extensions: [
      // pathLen 0: it signs the device's and the host's certificates, never another CA.
      new x509.BasicConstraintsExtension(true, 0, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
    ],
  });
  return { cert, key: keys.privateKey };
}

/**
 * The pair in `dir` if `valid` accepts it, else a new one from `make` (replacing the old one).
 * A pair another build placed meanwhile wins, so concurrent builds agree.
 */
async function ensure(
  dir: string,
  valid: (pair: Loaded) => Promise<boolean>,
  make: () => Promise<{ cert: x509.X509Certificate; key: CryptoKey }>,
): Promise<Loaded> {
  const current = await load(dir);
  if (current && (await valid(current))) return current;
  const made = await make();
  const pem = await pemOf(made.cert, made.key);
  if (await store(dir, pem, current !== undefined)) return { ...made, pem };
  return (await load(dir))!;
}

const sameNames = (a: string[], b: string[]) => [...a].sort().join('\n') === [...b].sort().join('\n');

function subjectAltNames(cert: x509.X509Certificate): string[] {
  const san = cert.getExtension(x509.SubjectAlternativeNameExtension);
  return san ? san.names.items.map((name) => `${name.type}:${name.value}`) : [];
}

/** Where a device's server pair lives: one per image name, so several devices share one CA. */
const serverDir = (tlsDir: string, name: string) => join(tlsDir, `server-${name}`);

/**
 * The CA, the client pair and `device`'s server pair in `<secrets>/tls`, each made only when
 * missing (or, for the two leaves, not issued by the CA there). The server certificate is
 * reissued, with a new key, when the device's address or host name changed: the host trusts
 * the CA, not the leaf, so that costs it nothing.
 */
export async function tlsMaterial(secretsDir: string, device: TlsDevice): Promise<TlsMaterial> {
  await privateDir(secretsDir);
  const tlsDir = join(secretsDir, 'tls');
  await privateDir(tlsDir);
  const ca = await ensure(join(tlsDir, 'ca'), async () => true, makeCa);
  const wanted = [`ip:${device.ip}`, `dns:${device.hostname}`];
  const server = await ensure(
    serverDir(tlsDir, device.name),
    async (pair) => (await issued(ca, pair.cert)) && sameNames(subjectAltNames(pair.cert), wanted),
    async () =>
      issue(ca, {
        subject: `CN=${device.hostname}`,
        extensions: [
          new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth]),
          new x509.SubjectAlternativeNameExtension([
            { type: 'ip', value: device.ip },
            { type: 'dns', value: device.hostname },
          ]),
        ],
      }),
  );
  const client = await ensure(
    join(tlsDir, 'client'),
    (pair) => issued(ca, pair.cert),
    () => issue(ca, { subject: CLIENT_NAME, extensions: [new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.clientAuth])] }),
  );
  return { ca: ca.pem.cert, server: server.pem, client: client.pem };
}
