/** For tests of the host kit: its files parsed, its scripts run against stand-ins for the system tools they call. */
import { type ChildProcess, execFileSync, type SpawnSyncReturns, spawn, spawnSync } from 'node:child_process';
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

/**
 * A docker CLI for setup-buildx.sh that remembers contexts and docker-container builders in files
 * under $STATE and logs every call; as buildx does, a context is a docker-driver builder of its
 * name, which buildx rm refuses.
 */
export const SETUP_BUILDX_DOCKER = `
echo "docker $*" >>"$STATE/log"
if [ "$1" = --context ]; then shift 2; fi
case "$1 $2" in
  "buildx version") exit 0 ;;
  "context inspect") [ -e "$STATE/context-$3" ] ;;
  "context create") for name; do :; done; : >"$STATE/context-$name" ;;
  "context update") exit 0 ;;
  "buildx inspect")
    if [ "$3" = --bootstrap ]; then echo "Name: \${4:-context}"
    elif [ -e "$STATE/builder-$3" ]; then echo "Driver: docker-container"
    elif [ -e "$STATE/context-$3" ]; then echo "Driver: docker"
    else exit 1; fi ;;
  "buildx create") : >"$STATE/builder-$4" ;;
  "buildx rm") if [ -e "$STATE/builder-$3" ]; then rm "$STATE/builder-$3"; else echo "ERROR: $3 is not a builder this can remove" >&2; exit 1; fi ;;
  "context rm") rm "$STATE/context-$3" ;;
  *) echo "unexpected: docker $*" >&2; exit 2 ;;
esac`;

/** What a test needs to run the kit's scripts as root on a stand-in host, changing nothing on this machine. */
export interface KitHost {
  /** The host's network namespace, for `ip netns exec`. */
  namespace: string;
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

/** What kitHost needs, for skipWithout. */
export const KIT_HOST_NEEDS = {
  root: process.getuid?.() === 0,
  'network namespaces (ip netns add)': spawnSync('ip', ['netns', 'list']).status === 0,
  'exportfs (nfs-kernel-server)': spawnSync('bash', ['--norc', '-c', 'command -v exportfs']).status === 0,
  'nft (nftables)': spawnSync('bash', ['--norc', '-c', 'command -v nft']).status === 0,
};

let hosts = 0;

/**
 * A host for the kit: a network namespace whose veth (named as systemd names a USB adapter, with
 * the host MAC) stands in for the USB link, the device's namespace at its other end (usb0,
 * `deviceAddress`), and private mounts: overlays on /etc and /var/lib whose changes land in temp
 * directories, an empty /run, so no script reaches this machine's services.
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
    // An empty /run: no systemd, D-Bus or Docker socket of this machine's is reachable.
    'mount -t tmpfs tmpfs /run',
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
    namespace: host,
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

/**
 * firewalld's nm-shared zone as its nftables backend makes it (firewalld 1.x, `nft list ruleset`),
 * for the link `link`: ICMP, DHCP, DNS and SSH in, the rest rejected; rich rules of priority 0
 * (the default) go into the zone's allow chain, ahead of the reject.
 */
export const nmSharedZone = (link: string) => `
table inet firewalld {
  chain filter_INPUT {
    type filter hook input priority filter + 10; policy accept;
    ct state established,related accept
    iifname "lo" accept
    iifname "${link}" jump filter_IN_nm-shared
  }
  chain filter_IN_nm-shared {
    jump filter_IN_nm-shared_allow
    meta l4proto { icmp, ipv6-icmp } accept
    reject with icmpx admin-prohibited
  }
  chain filter_IN_nm-shared_allow {
    udp dport 67 accept
    udp dport 53 accept
    tcp dport 53 accept
    tcp dport 22 accept
  }
}`;

/**
 * firewall-cmd for a host whose firewalld cannot run (it needs D-Bus): --permanent goes to the
 * real firewall-offline-cmd, which checks the rule and writes the zone's XML under /etc/firewalld;
 * the running rules are nmSharedZone's, a rich rule "source address, port, protocol, accept" made
 * the nftables rule firewalld makes of it. Every call is logged to $STATE/firewall-cmd.
 */
export const FIREWALL_CMD = `
echo "firewall-cmd $*" >>"$STATE/firewall-cmd"
permanent=() rest=()
for arg; do if [ "$arg" = --permanent ]; then permanent=1; else rest+=("$arg"); fi; done
[ -z "$permanent" ] || exec firewall-offline-cmd "\${rest[@]}"
chain=filter_IN_nm-shared_allow
case $1 in
  --state) echo running; exit 0 ;;
  --get-zone-of-interface=*) echo nm-shared; exit 0 ;;
  --zone=nm-shared) ;;
  *) exit 2 ;;
esac
rule=\${2#*=}
field() { sed -n "s/.* $1=\\"\\([^\\"]*\\)\\".*/\\1/p" <<<"$rule"; }
nft_rule="ip saddr $(field address) $(field protocol) dport $(field port) accept"
case $2 in
  --query-rich-rule=*) nft list chain inet firewalld $chain | grep -qF "$nft_rule" ;;
  --add-rich-rule=*) nft add rule inet firewalld $chain $nft_rule ;;
  --remove-rich-rule=*)
    handle=$(nft -a list chain inet firewalld $chain | grep -F "$nft_rule" | sed 's/.*# handle //')
    nft delete rule inet firewalld $chain handle "$handle" ;;
  *) exit 1 ;;
esac`;

/** firewalld's nm-shared zone file (firewalld 0.9 and later ship it in /usr/lib/firewalld/zones). */
export const NM_SHARED_XML = `<?xml version="1.0" encoding="utf-8"?>
<zone target="ACCEPT">
  <short>NetworkManager Shared</short>
  <service name="dhcp"/>
  <service name="dns"/>
  <service name="ssh"/>
  <protocol value="icmp"/>
  <protocol value="ipv6-icmp"/>
  <rule priority="32767">
    <reject/>
  </rule>
</zone>
`;

/** Shell commands giving a kitHost firewalld's nm-shared zone for `link`: its running rules and its zone file. */
export const withNmSharedZone = (link: string) =>
  `nft -f - <<'EOF'\n${nmSharedZone(link)}\nEOF\nmkdir -p /etc/firewalld/zones && cat >/etc/firewalld/zones/nm-shared.xml <<'EOF'\n${NM_SHARED_XML}EOF`;

/** A node one-liner: connects to $0:$1 from address $2 and prints "connected" or the error's code. */
export const TCP_PROBE = `${process.execPath} -e '
const socket = require("net").connect({ host: process.argv[1], port: +process.argv[2], localAddress: process.argv[3], timeout: 5000 });
socket.on("connect", () => { console.log("connected"); socket.destroy(); });
socket.on("timeout", () => { console.log("ETIMEDOUT"); socket.destroy(); });
socket.on("error", (error) => console.log(error.code));'`;

/** A TCP server on `address:port` in `namespace`, once it listens: what answers does not matter to a firewall or ss. */
export async function listenIn(namespace: string, address: string, port: number): Promise<ChildProcess> {
  const server = `require("net").createServer((s) => s.end()).listen(${port}, "${address}", () => console.log("listening"))`;
  const listener = spawn('ip', ['netns', 'exec', namespace, process.execPath, '-e', server]);
  await new Promise((resolve, reject) => {
    listener.stdout?.once('data', resolve);
    listener.once('exit', (code) => reject(new Error(`the server on ${address}:${port} exited with ${code}`)));
  });
  return listener;
}
