/**
 * One device's secrets, made (first build) or read (later builds) in the build's own stage before
 * its image is patched: the plan only names them (an operation of kind `secret`), so a plan makes
 * no keys and reads the same before and after they exist.
 */
import { HOST_KEY_TYPES, hostKeys, hostKeysDir, privateDir } from './ssh-host-keys.js';
import { tlsMaterial } from './tls.js';

/** A device's secrets by name: the bytes each `secret` operation writes. */
export type DeviceSecrets = ReadonlyMap<string, Buffer>;

/** The names the steps place: dockerd's TLS files and each SSH host key pair. */
export const SECRET = {
  tlsCa: 'tls/ca.pem',
  tlsServerCert: 'tls/server-cert.pem',
  tlsServerKey: 'tls/server-key.pem',
  sshHostKey: (type: string) => `ssh/ssh_host_${type}_key`,
  sshHostPublicKey: (type: string) => `ssh/ssh_host_${type}_key.pub`,
} as const;

/** Every SSH host key type the device gets, as SECRET names them. */
export const SSH_HOST_KEY_TYPES: readonly string[] = HOST_KEY_TYPES.map(({ type }) => type);

export interface SecretsDevice {
  name: string;
  hostname: string;
  network: { ip: string };
}

/** The device's secrets from `secretsDir` (<out>/secrets), each made there when missing. */
export async function deviceSecrets(secretsDir: string, device: SecretsDevice): Promise<DeviceSecrets> {
  await privateDir(secretsDir);
  const secrets = new Map<string, Buffer>();
  for (const key of await hostKeys(hostKeysDir(secretsDir), `root@${device.hostname}`)) {
    secrets.set(SECRET.sshHostKey(key.type), key.privateKey);
    secrets.set(SECRET.sshHostPublicKey(key.type), key.publicKey);
  }
  const tls = await tlsMaterial(secretsDir, { name: device.name, hostname: device.hostname, ip: device.network.ip });
  secrets.set(SECRET.tlsCa, Buffer.from(tls.ca));
  secrets.set(SECRET.tlsServerCert, Buffer.from(tls.server.cert));
  secrets.set(SECRET.tlsServerKey, Buffer.from(tls.server.key));
  return secrets;
}
