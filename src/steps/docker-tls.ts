/**
 * The device's half of the Docker API's mutual TLS (docs/host-kit.md): where dockerd listens and
 * the files it proves itself with. Part of the docker step; the host's half is the host kit.
 */
import { Readable } from 'node:stream';
import type { BuildConfig } from '../config/schema.js';
import type { Operation, StreamEntry } from '../engine/operations.js';
import { DOCKER_TLS_PORT, tlsMaterial } from '../secrets/tls.js';

const TLS_DIR = '/etc/docker/tls';
const FILES = { ca: 'ca.pem', cert: 'server-cert.pem', key: 'server-key.pem' };

/**
 * dockerd's sockets, for daemon.json `hosts` (never -H, which dockerd refuses alongside it): the
 * local socket, and TLS on the USB link's address only, not on the board's Ethernet port.
 */
export function dockerHosts(config: BuildConfig): string[] {
  return ['unix:///var/run/docker.sock', `tcp://${config.network.ip}:${DOCKER_TLS_PORT}`];
}

/** The daemon.json values that turn on client-certificate checking. */
export const dockerTlsView = {
  tlsCaCert: `${TLS_DIR}/${FILES.ca}`,
  tlsCert: `${TLS_DIR}/${FILES.cert}`,
  tlsKey: `${TLS_DIR}/${FILES.key}`,
};

const file = (path: string, text: string, mode: number): StreamEntry => ({
  type: 'file',
  path,
  data: Readable.from([Buffer.from(text)]),
  mode,
  uid: 0,
  gid: 0,
});

/** Made (first build) or read (later builds) only when the image is written: a dry run makes no keys. */
async function* serverTlsEntries(secrets: string, config: BuildConfig): AsyncIterable<StreamEntry> {
  const tls = await tlsMaterial(secrets, { name: config.name, hostname: config.hostname, ip: config.network.ip });
  yield file(FILES.ca, tls.ca, 0o644);
  yield file(FILES.cert, tls.server.cert, 0o644);
  yield file(FILES.key, tls.server.key, 0o600);
}

export function dockerTlsOperations(secrets: string, config: BuildConfig): Operation[] {
  return [
    { op: 'mkdir', on: 'rootfs', path: TLS_DIR, mode: 0o755, uid: 0, gid: 0 },
    {
      op: 'stream',
      on: 'rootfs',
      dir: TLS_DIR,
      what: `the CA and ${config.network.ip}'s server certificate and key from ${secrets}/tls, made there by the first build`,
      entries: () => serverTlsEntries(secrets, config),
    },
  ];
}
