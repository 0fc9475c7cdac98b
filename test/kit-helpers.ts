/** For tests of the host kit: its files parsed, its scripts run against stand-ins for the system tools they call. */
import { execFileSync, type SpawnSyncReturns, spawnSync } from 'node:child_process';
import { chmod, lstat, mkdir, readdir, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { tempDir } from './support/images.js';

/** A GLib key file (NetworkManager's keyfile format) as { section: { key: value } }. */
export function parseKeyFile(text: string): Record<string, Record<string, string>> {
  const sections: Record<string, Record<string, string>> = {};
  let current: Record<string, string> | undefined;
  for (const line of text.split('\n')) {
    if (line.trim() === '' || line.startsWith('#')) continue;
    const section = /^\[([^\]]+)\]$/.exec(line);
    if (section) {
      if (sections[section[1]]) throw new Error(`section [${section[1]}] twice`);
      current = sections[section[1]] = {};
      continue;
    }
    const entry = /^([A-Za-z0-9-]+)=(.*)$/.exec(line);
    if (!entry || !current) throw new Error(`not a key file line: ${line}`);
    current[entry[1]] = entry[2];
  }
  return sections;
}

export const BASH = execFileSync('bash', ['--norc', '-c', 'command -v bash'], { encoding: 'utf8' }).trim();

/**
 * A bin directory holding only stand-ins (shell scripts given as text) and links to the real
 * tools the kit's scripts may use (`tools` adds to the usual ones), so nothing on this machine
 * is touched or consulted.
 */
export async function fakeBin(stubs: Record<string, string>, tools: string[] = []): Promise<string> {
  const bin = await tempDir();
  for (const tool of ['tr', 'basename', 'dirname', 'cat', 'grep', ...tools]) {
    await symlink(execFileSync('bash', ['--norc', '-c', `command -v ${tool}`], { encoding: 'utf8' }).trim(), join(bin, tool));
  }
  for (const [name, body] of Object.entries(stubs)) {
    await writeFile(join(bin, name), `#!${BASH}\n${body}\n`);
    await chmod(join(bin, name), 0o755);
  }
  return bin;
}

/** Whether a private key and a certificate pair: openssl derives the same public key from both. */
export function keyMatchesCertificate(keyFile: string, certFile: string): boolean {
  const publicKey = (args: string[]) => execFileSync('openssl', args, { encoding: 'utf8' });
  return publicKey(['pkey', '-pubout', '-in', keyFile]) === publicKey(['x509', '-noout', '-pubkey', '-in', certFile]);
}

export function runKitScript(script: string, bin: string, env: Record<string, string> = {}, args: string[] = []) {
  return spawnSync(BASH, [script, ...args], { encoding: 'utf8', env: { PATH: bin, ...env } });
}

/** A docker CLI for setup-buildx.sh that remembers contexts and builders in files under $STATE and logs every call. */
export const SETUP_BUILDX_DOCKER = `
echo "docker $*" >>"$STATE/log"
case "$1 $2" in
  "buildx version") exit 0 ;;
  "context inspect") [ -e "$STATE/context-$3" ] ;;
  "context create") for name; do :; done; : >"$STATE/context-$name" ;;
  "context update") exit 0 ;;
  "buildx inspect") if [ "$3" = --bootstrap ]; then echo "Name: $4"; else [ -e "$STATE/builder-$3" ]; fi ;;
  "buildx create") : >"$STATE/builder-$4" ;;
  "buildx rm") rm "$STATE/builder-$3" ;;
  "context rm") rm "$STATE/context-$3" ;;
  *) echo "unexpected: docker $*" >&2; exit 2 ;;
esac`;

/** What a test needs to run the kit's scripts as root on a stand-in host, changing nothing on this machine. */
export interface KitHost {
  /** Runs `bash <script> args` as root in the host namespace, `bin` first on PATH, or `path` as PATH. */
  run(script: string, args?: string[], options?: { bin?: string; path?: string; env?: Record<string, string> }): SpawnSyncReturns<string>;
  /** Runs a shell command in the host namespace, with the same private mounts. */
  shell(command: string): SpawnSyncReturns<string>;
  /** Runs a shell command in the device's namespace, the other end of the link. */
  onDevice(command: string): SpawnSyncReturns<string>;
  /** What the scripts changed under /etc and /var/lib: the overlays' upper directories' files. */
  changed(): Promise<string[]>;
  remove(): Promise<void>;
}

let hosts = 0;

/**
 * A host for the kit: a network namespace whose veth (named as systemd names a USB adapter, with
 * the host MAC) stands in for the USB link, the device's namespace at its other end (usb0,
 * `deviceAddress`), and private mounts: overlays on /etc and /var/lib whose changes land in temp
 * directories, /run/systemd and /run/dbus hidden, so no script reaches this machine's services.
 */
export async function kitHost(hostMac: string, deviceAddress: string): Promise<KitHost> {
  const dir = await tempDir();
  const tag = `${process.pid}-${hosts++}`;
  const host = `kit-host-${tag}`;
  const device = `kit-device-${tag}`;
  const overlays = ['/etc', '/var/lib'].map((lower, index) => ({
    lower,
    upper: join(dir, `upper${index}`),
    work: join(dir, `work${index}`),
  }));
  for (const { upper, work } of overlays) {
    await mkdir(upper);
    await mkdir(work);
  }
  const prelude = [
    'set -e',
    ...overlays.map(({ lower, upper, work }) => `mount -t overlay overlay -o lowerdir=${lower},upperdir=${upper},workdir=${work} ${lower}`),
    'for hidden in /run/systemd /run/dbus; do if [ -d "$hidden" ]; then mount -t tmpfs tmpfs "$hidden"; fi; done',
    'set +e',
  ].join('\n');
  const sh = (namespace: string, command: string, env: Record<string, string> = {}) =>
    spawnSync('ip', ['netns', 'exec', namespace, BASH, '--norc', '-c', command], {
      encoding: 'utf8',
      env: { PATH: process.env.PATH ?? '', ...env },
    });
  const must = (...args: string[]) => execFileSync('ip', args, { encoding: 'utf8' });
  must('netns', 'add', host);
  must('netns', 'add', device);
  const link = `enx${hostMac.replaceAll(':', '')}`;
  must('-n', host, 'link', 'add', 'name', link, 'address', hostMac, 'type', 'veth', 'peer', 'name', 'usb0', 'netns', device);
  must('-n', host, 'link', 'set', link, 'up');
  must('-n', host, 'link', 'set', 'lo', 'up');
  must('-n', device, 'address', 'add', deviceAddress, 'dev', 'usb0');
  must('-n', device, 'link', 'set', 'usb0', 'up');
  must('-n', device, 'link', 'set', 'lo', 'up');
  return {
    run: (script, args = [], { bin, path = bin && `${bin}:${process.env.PATH}`, env = {} } = {}) =>
      sh(
        host,
        `${prelude}\n${path ? `PATH=${shellQuote(path)}\n` : ''}exec ${BASH} --norc ${[script, ...args].map(shellQuote).join(' ')}`,
        env,
      ),
    shell: (command) => sh(host, `${prelude}\n${command}`),
    onDevice: (command) => sh(device, command),
    changed: async () => {
      const files: string[] = [];
      for (const { lower, upper } of overlays) {
        for (const entry of await readdir(upper, { recursive: true })) {
          if (!(await sameAsLower(join(upper, entry), join(lower, entry)))) files.push(join(lower, entry));
        }
      }
      return files.sort();
    },
    remove: async () => {
      spawnSync('ip', ['netns', 'del', host]);
      spawnSync('ip', ['netns', 'del', device]);
      await rm(dir, { recursive: true, force: true });
    },
  };
}

/**
 * Whether an overlay's upper entry only repeats its lower one: a directory copied up to reach a
 * file in it, a file rewritten with the same bytes and mode (not a whiteout, which is a device).
 */
async function sameAsLower(upper: string, lower: string): Promise<boolean> {
  const [above, below] = await Promise.all([lstat(upper), lstat(lower).catch(() => undefined)]);
  if (!below) return false;
  if (above.isDirectory()) return below.isDirectory();
  if (!above.isFile() || !below.isFile() || above.mode !== below.mode) return false;
  return (await readFile(upper)).equals(await readFile(lower));
}

const shellQuote = (word: string) => `'${word.replaceAll("'", "'\\''")}'`;
