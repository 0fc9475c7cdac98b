/**
 * The test machine's side of the host phase (boot-check's host_phase): Debian's stock docker
 * client, given only the host kit's tls/ directory, talks to the booted device's API as the
 * laptop would, at tcp://<device address>:2376, so `--tlsverify` checks the server certificate's
 * IP SAN against the very address the user types.
 *
 * The path, each hop a process this test starts and stops:
 *   docker CLI, in a private network namespace where the device address is on lo
 *   -> socat listening on <device address>:2376 there -> a unix socket (file systems are not
 *   per namespace) -> this process -> 127.0.0.1:<free port>, QEMU's hostfwd -> the guest's eth0
 *   -> the check service's relay -> the host end of the USB link (its own namespace in the
 *   guest) -> over the link -> usb0 -> dockerd.
 * Nothing listens outside 127.0.0.1 and the namespace, and TLS runs end to end.
 */
import { type ChildProcess, execFile as execFileCallback, spawn } from 'node:child_process';
import { chmod, copyFile, mkdir, readFile, writeFile } from 'node:fs/promises';
import { connect, createServer, type Server, type Socket } from 'node:net';
import { join } from 'node:path';
import { connect as tlsConnect } from 'node:tls';
import { promisify } from 'node:util';

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

/** Pipes `from` both ways to 127.0.0.1:`port`; returns the new connection. */
function relay(from: Socket, port: number): Socket {
  const to = connect(port, '127.0.0.1');
  from.pipe(to).pipe(from);
  from.once('error', () => to.destroy());
  to.once('error', () => from.destroy());
  return to;
}

export interface ClientNetns {
  name: string;
  deviceIp: string;
  stop(): Promise<void>;
}

/**
 * A network namespace where `deviceIp`:2376 leads to 127.0.0.1:`hostPort` of this machine (see
 * the path above). `work` holds the unix socket.
 */
export async function startClientNetns(deviceIp: string, hostPort: number, work: string): Promise<ClientNetns> {
  const name = `obi-boot-client-${process.pid}`;
  const socket = join(work, 'api.sock');
  // Each connection, both ends: closing the server waits for every connection to end, and one
  // left half-open when the guest powered off held the test's teardown for good.
  const open = new Set<Socket>();
  const server: Server = createServer((from) => {
    for (const end of [from, relay(from, hostPort)]) {
      open.add(end);
      end.once('close', () => open.delete(end));
    }
  });
  await new Promise<void>((resolve, reject) => server.once('error', reject).listen(socket, resolve));
  let socat: ChildProcess | undefined;
  const stop = async () => {
    socat?.kill();
    await execFile('ip', ['netns', 'del', name]).catch(() => undefined);
    const closed = new Promise((resolve) => server.close(resolve));
    for (const end of open) end.destroy();
    await closed;
  };
  try {
    await execFile('ip', ['netns', 'add', name]);
    await execFile('ip', ['-n', name, 'link', 'set', 'lo', 'up']);
    await execFile('ip', ['-n', name, 'addr', 'add', `${deviceIp}/32`, 'dev', 'lo']);
    socat = spawn(
      'ip',
      ['netns', 'exec', name, 'socat', `TCP-LISTEN:${API_PORT},bind=${deviceIp},fork,reuseaddr`, `UNIX-CONNECT:${socket}`],
      { stdio: 'ignore' },
    );
    for (let tries = 0; ; tries++) {
      const { stdout } = await execFile('ip', ['netns', 'exec', name, 'ss', '-Hltn', `sport = :${API_PORT}`]);
      if (stdout.trim()) break;
      if (tries > 100 || socat.exitCode !== null) throw new Error(`socat in ${name} does not listen on ${deviceIp}:${API_PORT}`);
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  } catch (error) {
    await stop();
    throw error;
  }
  return { name, deviceIp, stop };
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
