/**
 * The test machine's side of the host phase (boot-check's host_phase): Debian's stock docker
 * client, given only the host kit's tls/ directory, talks to the booted device's API as the
 * laptop would, at tcp://<device address>:2376, so `--tlsverify` checks the server certificate's
 * IP SAN against the very address the user types.
 *
 * The path is the kernel's all the way, no process relays a byte: the docker CLI in a private
 * network namespace of the test machine, whose route to the device address leads through a tap
 * device, QEMU's second NIC of the guest -> in the guest, the host end of the USB link's own
 * namespace (the laptop), which forwards and masquerades onto the link -> over the link -> usb0
 * -> dockerd. Nothing listens outside 127.0.0.1 and the namespaces, and TLS runs end to end.
 */
import { execFile as execFileCallback } from 'node:child_process';
import { chmod, copyFile, mkdir, readFile, writeFile } from 'node:fs/promises';
import { connect, createServer } from 'node:net';
import { join } from 'node:path';
import { connect as tlsConnect } from 'node:tls';
import { promisify } from 'node:util';
import type { Tap } from './qemu.js';

const execFile = promisify(execFileCallback);
/** Debian's docker.io client (.ci/run installs it), not any other docker on the PATH. */
export const DOCKER_CLI = '/usr/bin/docker';
const API_PORT = 2376;

/** A TCP port on 127.0.0.1 that nothing listens on right now. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}

/**
 * The client's link to the guest: the MAC of the guest's NIC on the tap, the client's address on
 * the tap, and the guest's end (the laptop).
 */
export interface ClientLink {
  mac: string;
  client: string;
  laptop: string;
  prefix: number;
}

export interface ClientNetns {
  name: string;
  deviceIp: string;
  /** The tap each boot's QEMU is given; it appears in the test machine's own namespace. */
  tap: Tap;
  /**
   * Moves the tap into the namespace, with the client's address and the route to the device
   * through the guest's end. Only once QEMU runs: it creates the tap as it starts.
   */
  attach(): Promise<void>;
  stop(): Promise<void>;
}

/** A network namespace for the client, whose route to `deviceIp` leads through the tap. */
export async function startClientNetns(deviceIp: string, link: ClientLink): Promise<ClientNetns> {
  const name = `obi-boot-client-${process.pid}`;
  // At most 15 characters (IFNAMSIZ): a pid has at most 7 digits.
  const tap = { ifname: `obi-tap-${process.pid}`, mac: link.mac };
  const ip = (...args: string[]) => execFile('ip', args);
  const stop = async () => {
    await ip('netns', 'del', name).catch(() => undefined);
  };
  const attach = async () => {
    await ip('link', 'set', tap.ifname, 'netns', name);
    await ip('-n', name, 'addr', 'add', `${link.client}/${link.prefix}`, 'dev', tap.ifname);
    await ip('-n', name, 'link', 'set', tap.ifname, 'up');
    await ip('-n', name, 'route', 'add', `${deviceIp}/32`, 'via', link.laptop);
  };
  try {
    await ip('netns', 'add', name);
    await ip('-n', name, 'link', 'set', 'lo', 'up');
  } catch (error) {
    await stop();
    throw error;
  }
  return { name, deviceIp, tap, attach, stop };
}

export interface Outcome {
  code: number;
  output: string;
}

/**
 * Runs the stock docker CLI in the namespace with only a certificate directory, as the host
 * kit's README says: DOCKER_HOST, DOCKER_TLS_VERIFY, DOCKER_CERT_PATH. The legacy builder:
 * Debian's bookworm client has no buildx, and the build goes through the API all the same.
 */
export async function dockerCli(netns: ClientNetns, certDir: string, configDir: string, args: string[]): Promise<Outcome> {
  return new Promise((resolve) => {
    execFileCallback(
      'ip',
      ['netns', 'exec', netns.name, DOCKER_CLI, ...args],
      {
        env: {
          PATH: process.env.PATH,
          DOCKER_HOST: `tcp://${netns.deviceIp}:${API_PORT}`,
          DOCKER_TLS_VERIFY: '1',
          DOCKER_CERT_PATH: certDir,
          DOCKER_CONFIG: configDir,
          DOCKER_BUILDKIT: '0',
        },
        timeout: 15 * 60_000,
        maxBuffer: 16 << 20,
      },
      (error, stdout, stderr) => resolve({ code: error ? ((error as { code?: number }).code ?? 1) : 0, output: `${stdout}${stderr}` }),
    );
  });
}

/** The busybox image boot-check `docker load`s on the device (tiny-image.ts): a local base image. */
export const TINY_IMAGE = 'boot-check/tiny:1';

/**
 * Runs `command` in the client's namespace as the laptop's user would with the host kit: only
 * PATH and a docker config of its own (the kit's contexts go there), no DOCKER_HOST.
 */
export async function kitCommand(netns: ClientNetns, configDir: string, command: string[]): Promise<Outcome> {
  return new Promise((resolve) => {
    execFileCallback(
      'ip',
      ['netns', 'exec', netns.name, ...command],
      { env: { PATH: process.env.PATH, DOCKER_CONFIG: configDir }, timeout: 15 * 60_000, maxBuffer: 16 << 20 },
      (error, stdout, stderr) => resolve({ code: error ? ((error as { code?: number }).code ?? 1) : 0, output: `${stdout}${stderr}` }),
    );
  });
}

/**
 * A buildx context: two stages, the first FROM the device's local busybox image with a cache
 * mount (no registry is reachable: the docker driver resolves FROM in dockerd's image store),
 * the second FROM scratch with its results: a copy of the arm64 busybox and `uname -m`.
 */
export async function buildxContext(dir: string): Promise<string> {
  await mkdir(dir, { recursive: true });
  await writeFile(
    join(dir, 'Dockerfile'),
    `FROM ${TINY_IMAGE} AS build\n` +
      "RUN --mount=type=cache,target=/cache sh -c 'uname -m >/cache/machine && cat /cache/machine >/machine && cat /bin/busybox >/busybox'\n" +
      'FROM scratch\nCOPY --from=build /machine /busybox /\n',
  );
  return dir;
}

/** A build context: FROM scratch, the static arm64 busybox, and a RUN that prints the machine. */
export async function buildContext(dir: string, busybox: string): Promise<string> {
  await mkdir(dir, { recursive: true });
  await copyFile(busybox, join(dir, 'busybox'));
  await chmod(join(dir, 'busybox'), 0o755);
  await writeFile(join(dir, 'Dockerfile'), 'FROM scratch\nCOPY busybox /busybox\nRUN ["/busybox", "uname", "-m"]\n');
  return dir;
}

/**
 * A certificate directory that trusts the kit's CA but holds a client certificate and key from
 * another CA, made with openssl: what a stranger with a certificate of their own would have.
 */
export async function foreignCertDir(dir: string, kitCa: string): Promise<string> {
  await mkdir(dir, { recursive: true });
  const at = (name: string) => join(dir, name);
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes'];
  await execFile('openssl', [
    'req',
    '-x509',
    ...ec,
    '-keyout',
    at('other-ca.key'),
    '-out',
    at('other-ca.pem'),
    '-days',
    '2',
    '-subj',
    '/CN=another CA',
  ]);
  await execFile('openssl', ['req', ...ec, '-keyout', at('key.pem'), '-out', at('client.csr'), '-subj', '/CN=client']);
  await writeFile(at('client.ext'), 'extendedKeyUsage = clientAuth\n');
  await execFile('openssl', [
    'x509',
    '-req',
    '-in',
    at('client.csr'),
    '-CA',
    at('other-ca.pem'),
    '-CAkey',
    at('other-ca.key'),
    '-CAcreateserial',
    '-days',
    '2',
    '-extfile',
    at('client.ext'),
    '-out',
    at('cert.pem'),
  ]);
  await copyFile(kitCa, at('ca.pem'));
  return dir;
}

/** Only the CA: a client without a certificate of its own. */
export async function caOnlyCertDir(dir: string, kitCa: string): Promise<string> {
  await mkdir(dir, { recursive: true });
  await copyFile(kitCa, join(dir, 'ca.pem'));
  return dir;
}

/**
 * A TLS handshake with the kit's client certificate to 127.0.0.1:`port`: "answered" when the
 * device's API completes it, else what happened instead. `waitMs` bounds a connection whose
 * packets are dropped; the device's drop counter, not this bound, proves the drop.
 */
export async function tlsHandshake(port: number, certDir: string, waitMs: number): Promise<string> {
  const [ca, cert, key] = await Promise.all(['ca.pem', 'cert.pem', 'key.pem'].map((file) => readFile(join(certDir, file))));
  return new Promise((resolve) => {
    const socket = tlsConnect({ host: '127.0.0.1', port, ca, cert, key, checkServerIdentity: () => undefined });
    const done = (what: string) => {
      clearTimeout(timer);
      socket.destroy();
      resolve(what);
    };
    const timer = setTimeout(() => done(`no answer in ${waitMs / 1000} s`), waitMs);
    socket.once('secureConnect', () => done('answered'));
    socket.once('error', (error) => done(`error: ${error.message}`));
    socket.once('close', () => done('closed without a handshake'));
  });
}

/** Ends the guest's host phase: one connection to its signal port, saying `what`. */
export function signalGuest(port: number, what: string): Promise<void> {
  return new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1', () => socket.end(`${what}\n`));
    socket.once('close', () => resolve());
    socket.once('error', () => resolve());
  });
}
