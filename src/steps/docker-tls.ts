/**
 * The device's half of the Docker API's mutual TLS (docs/host-kit.md): where dockerd listens and
 * the files it proves itself with. Part of the docker step; the host's half is the host kit.
 */
import type { BuildConfig } from '../config/schema.js';
import type { Operation } from '../engine/operations.js';
import { SECRET } from '../secrets/device-secrets.js';
import { DOCKER_TLS_PORT } from '../secrets/tls.js';

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

/** dockerd's CA, certificate and key, named for the secrets stage to fill (a plan makes no keys). */
export function dockerTlsOperations(): Operation[] {
  return [
    { op: 'mkdir', on: 'rootfs', path: TLS_DIR, mode: 0o755, uid: 0, gid: 0 },
    { op: 'secret', on: 'rootfs', path: `${TLS_DIR}/${FILES.ca}`, secret: SECRET.tlsCa, mode: 0o644, uid: 0, gid: 0 },
    { op: 'secret', on: 'rootfs', path: `${TLS_DIR}/${FILES.cert}`, secret: SECRET.tlsServerCert, mode: 0o644, uid: 0, gid: 0 },
    { op: 'secret', on: 'rootfs', path: `${TLS_DIR}/${FILES.key}`, secret: SECRET.tlsServerKey, mode: 0o600, uid: 0, gid: 0 },
  ];
}
