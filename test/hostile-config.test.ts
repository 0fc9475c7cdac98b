/**
 * Arbitrary strings in every string config key: each is either refused in one line, or every
 * generated shell file (the device's builder-storage, the host kit's scripts, the commands in its
 * README and exports) parses, gives back exactly the value where it is assigned or used, and runs
 * no command. The templates are rendered directly, as the steps and the host kit do; one real
 * build below takes a hostile value that the grammar lets through.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import fc from 'fast-check';
import { beforeAll, describe, expect, it } from 'vitest';
import { resolveConfig } from '../src/config/load.js';
import { type BuildConfig, SCHEMA } from '../src/config/schema.js';
import { renderTemplate } from '../src/engine/templates.js';
import { UserError } from '../src/errors.js';
import { deviceView, renderKitTemplates } from '../src/host-kit/host-kit.js';
import { dockerView, nfsMountOptions } from '../src/steps/docker.js';
import { bundleFiles, makeBundle } from './docker-bundle-fixture.js';
import { parseKeyFile } from './kit-helpers.js';
import { buildImage } from './support/cli.js';
import { debugfsCat } from './support/debugfs.js';
import { stockImage, tempDir } from './support/images.js';

const HOST_KEY = 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHxYx3PbR1b0wE4y8R2e6u3W5iK0Jw8rC3yY4z1Qk2aB';

/** What a value that escaped its quoting would run: each makes `canary` in the working directory. */
const FRAGMENTS = [
  '$(touch canary)',
  '`touch canary`',
  "';touch canary;'",
  '";touch canary;"',
  '\ntouch canary\n',
  '|touch canary',
  '&touch canary&',
  '>canary',
  '${IFS}',
  '%n',
  '\\',
  ' ',
  "'",
  '"',
  '#',
  ',',
  ':',
  '\0',
  '\r',
];

/** Values close to what each key accepts, so that many samples get past the grammar. */
const NEAR_VALID: Record<string, fc.Arbitrary<string>> = {
  name: fc.stringMatching(/^[a-z0-9][a-z0-9-]{0,20}[a-z0-9]$/),
  hostname: fc.stringMatching(/^[A-Za-z0-9][A-Za-z0-9-]{0,20}[A-Za-z0-9]$/),
  'usb.deviceMac': fc.stringMatching(/^[0-9a-f][26ae](:[0-9a-f]{2}){5}$/),
  'usb.hostMac': fc.stringMatching(/^[0-9a-f][26ae](:[0-9a-f]{2}){5}$/),
  'network.address': fc.stringMatching(/^10\.0\.0\.([2-9]|[1-9][0-9])\/(2[0-9]|1[6-9])$/),
  'network.gateway': fc.stringMatching(/^10\.0\.0\.([1-9]|1[0-9])$/),
  'network.dns': fc.stringMatching(/^(1?[0-9]{1,2}\.){3}1?[0-9]{1,2}$/),
  'nfs.server': fc.stringMatching(/^10\.0\.(0|1)\.([1-9]|1[0-9])$/),
  'nfs.export': fc.stringMatching(/^(\/[A-Za-z0-9._+-]{1,10}){1,4}$/),
  'nfs.dataImageSize': fc.stringMatching(/^[0-9]{1,8}[KMGTP]?$/),
  'docker.bundle': fc.stringMatching(/^\/[ -~]{1,30}\.tgz$/),
  'docker.sha256': fc.stringMatching(/^[0-9a-fA-F]{64}$/),
  'ssh.authorizedKeys': fc.string({ unit: 'binary' }).map((comment) => `${HOST_KEY} ${comment}`),
};

/** One value per key that the grammar accepts, tried first: every key reaches the templates at least once. */
const ACCEPTED: Record<string, string> = {
  name: 'c2-x',
  hostname: 'C2-x',
  'usb.deviceMac': '02:11:22:33:44:55',
  'usb.hostMac': '06:11:22:33:44:55',
  'network.address': '10.0.0.9/24',
  'network.gateway': '10.0.0.7',
  'network.dns': '9.9.9.9',
  'nfs.server': '10.0.0.1',
  'nfs.export': '/srv/c2+x_1.0',
  'nfs.dataImageSize': '64G',
  'docker.bundle': "/tmp/d'o $(c)/docker.tgz",
  'docker.sha256': 'A'.repeat(64),
  'ssh.authorizedKeys': `${HOST_KEY} me@laptop $(touch canary) '\t'`,
};

function valueFor(key: string): fc.Arbitrary<string> {
  const near = NEAR_VALID[key] ?? fc.string();
  const withFragment = fc.tuple(near, fc.nat(), fc.constantFrom(...FRAGMENTS)).map(([text, at, fragment]) => {
    const position = at % (text.length + 1);
    return text.slice(0, position) + fragment + text.slice(position);
  });
  return fc.oneof(
    { arbitrary: near, weight: 3 },
    { arbitrary: withFragment, weight: 2 },
    { arbitrary: fc.string({ unit: 'binary' }), weight: 1 },
    { arbitrary: fc.string({ unit: fc.constantFrom(...`/'"\`$(){};|&<>\\ \n.-_a1:%#`.split('')) }), weight: 1 },
  );
}

/** A raw config with `value` at `key` (a list key gets a one-element list), plus what the key needs beside it. */
function rawConfig(key: string, value: string): Record<string, unknown> {
  const raw: Record<string, unknown> = key === 'docker.sha256' ? { docker: { bundle: '/tmp/docker.tgz' } } : {};
  const list = SCHEMA.find((entry) => entry.key === key)!.type.name === 'string[]';
  const [group, leaf] = key.includes('.') ? key.split('.') : [undefined, key];
  if (group !== undefined) raw[group] ??= {};
  const target = group === undefined ? raw : (raw[group] as Record<string, unknown>);
  target[leaf] = list ? [value] : value;
  return raw;
}

/** The ```sh blocks of a markdown file. */
const shBlocks = (markdown: string) => [...markdown.matchAll(/^```sh\n([\s\S]*?)^```$/gm)].map((match) => match[1]);

/**
 * Checks every shell file in `dir` (readme.sh: the README's sh blocks) with `sh -n`/`bash -n`
 * and runs the parts that hold values
 * (the script itself where it is safe to, else its assignments), writing what the values became
 * into *.out files, NUL-separated. Exit status: which check failed.
 */
const CHECKER = String.raw`
set -u
# setup-buildx.sh and bench-buildx.sh run to their end below, which parses them whole.
sh -n builder-storage || exit 11
bash -n nat.sh || exit 12
sh -n readme.sh || exit 13
out() { printf '%s\0' "$@"; }
# builder-storage as it runs at boot, with its one command that changes nothing.
( set -- driver /dev/null; . ./builder-storage >/dev/null; out "$NFS_SHARE" "$NFS_OPTIONS" "$LINK_ADDRESS" "$DATA_IMAGE" >storage.out ) || exit 21
# nat.sh up to its first function: the part that holds the values (the rest needs root and a device).
( eval "$(sed '/^die() {$/,$d' nat.sh)"; out "${'$'}{boards[@]}" >nat.out ) || exit 22
# Sourced, bench-buildx.sh only sets its variables and defines its functions.
( . ./bench-buildx.sh; out "$builder" "${'$'}{devices[@]}" >bench.out ) || exit 23
# setup-buildx.sh whole, against a docker that records each call (inspect: nothing there yet).
docker() {
  printf '%s\0' "$@" -- >>docker.out
  case "$1 $2" in "context inspect" | "buildx inspect") [ "${'$'}{3:-}" = --bootstrap ] ;; esac
}
export -f docker
bash ./setup-buildx.sh >/dev/null || exit 24
# The README's and exports' command lines, evaluated as words only.
n=0
while IFS= read -r line; do
  n=$((n + 1))
  eval "set -- $line" || exit 25
  out "$@" >"words-$n.out"
done <commands.txt
[ ! -e canary ] || exit 30
`;

/** The command lines that carry values: the README's, and those in the comments of `exports`. */
const README_COMMAND = /^((?:sudo mkdir -p|ping -c1|ssh -o|sudo install -m 600|sudo cp exports) .*)$/;
const EXPORTS_COMMAND = /^#\s+(sudo mkdir -p .*)$/;

const readOut = async (dir: string, file: string) => (await readFile(join(dir, file), 'utf8')).split('\0').slice(0, -1);

/** Renders what a config generates, runs the checker on the shell files and compares each value. */
async function checkGenerated(config: BuildConfig, dir: string): Promise<void> {
  await rm(dir, { recursive: true, force: true });
  await mkdir(join(dir, 'tls'), { recursive: true });
  const view = dockerView(config);
  const files: Record<string, string> = { 'builder-storage': await renderTemplate('docker/usr/local/sbin/builder-storage.mustache', view) };
  for (const kit of await renderKitTemplates([deviceView(config, [HOST_KEY])], config.name)) files[kit.path] = kit.content;
  files['readme.sh'] = shBlocks(files['README.md']).join('\n');
  const commands = [
    ...files['README.md'].split('\n').flatMap((line) => README_COMMAND.exec(line)?.[1] ?? []),
    ...files.exports.split('\n').flatMap((line) => EXPORTS_COMMAND.exec(line)?.[1] ?? []),
  ];
  files['commands.txt'] = `${commands.join('\n')}\n`;
  for (const [name, content] of Object.entries(files)) {
    await mkdir(join(dir, name, '..'), { recursive: true });
    await writeFile(join(dir, name), content);
  }

  const run = spawnSync('bash', ['--norc', '-c', CHECKER], { cwd: dir, encoding: 'utf8' });
  expect(run.status, `${run.stderr}`).toBe(0);
  const { name, hostname } = config;
  const ip = config.network.ip;
  expect(await readOut(dir, 'storage.out')).toEqual([
    `${config.nfs.server}:${config.nfs.export}`,
    nfsMountOptions(config.nfs.server),
    ip,
    `${name}.ext4`,
  ]);
  expect(await readOut(dir, 'nat.out')).toEqual([config.usb.hostMac, `${config.network.gateway}/${config.network.prefix}`, ip]);
  expect(await readOut(dir, 'bench.out')).toEqual([name, ip]);
  const calls = (await readOut(dir, 'docker.out'))
    .join('\0')
    .split('\0--\0')
    .map((call) => call.replace(/\0--$/, '').split('\0'));
  expect(calls).toContainEqual([
    'context',
    'create',
    '--description',
    `odroid-buildx-image device ${name}`,
    '--docker',
    `host=tcp://${ip}:2376,ca=${dir}/tls/ca.pem,cert=${dir}/tls/cert.pem,key=${dir}/tls/key.pem`,
    name,
  ]);
  // One board: the docker driver, the context is the builder.
  expect(calls).toContainEqual(['--context', name, 'buildx', 'inspect', '--bootstrap']);
  const words = await Promise.all(commands.map((_command, index) => readOut(dir, `words-${index + 1}.out`)));
  expect(words).toEqual(
    expect.arrayContaining([
      ['sudo', 'mkdir', '-p', config.nfs.export],
      ['ping', '-c1', ip],
      ['ssh', '-o', `UserKnownHostsFile=${dir}/known_hosts`, `root@${ip}`],
      ['sudo', 'install', '-m', '600', '-o', 'root', '-g', 'root', `${name}.nmconnection`, '/etc/NetworkManager/system-connections/'],
      ['sudo', 'cp', 'exports', `/etc/exports.d/${name}.exports`],
    ]),
  );
  expect(words.filter((line) => line[1] === 'mkdir')).toHaveLength(2);

  // The other languages: each value reads back from its own file.
  expect(files.exports.split('\n')).toContain(`${config.nfs.export} ${ip}(rw,sync,no_subtree_check,no_root_squash)`);
  expect(files.known_hosts).toBe(`${ip},${hostname} ${HOST_KEY}\n`);
  expect(parseKeyFile(files[`${name}.nmconnection`])).toMatchObject({
    connection: { id: name },
    ethernet: { 'mac-address': config.usb.hostMac },
    ipv4: { address1: `${config.network.gateway}/${config.network.prefix}` },
  });
  const daemon = JSON.parse(await renderTemplate('docker/etc/docker/daemon.json.mustache', view));
  expect(daemon.hosts).toEqual(view.hosts);
  for (const unit of ['builder-storage', 'containerd', 'docker'])
    await renderTemplate(`docker/etc/systemd/system/${unit}.service.mustache`, view);
  const keys = await renderTemplate('remote-access/root/.ssh/authorized_keys.mustache', { keys: config.ssh.authorizedKeys });
  expect(keys.split('\n').filter((line) => line && !line.startsWith('#'))).toEqual(config.ssh.authorizedKeys);
}

let work: string;
beforeAll(async () => {
  work = await tempDir();
});

const STRING_KEYS = SCHEMA.filter((entry) => entry.type.name === 'string' || entry.type.name === 'string[]').map((entry) => entry.key);

describe('arbitrary strings in the config', () => {
  it('covers every string key of the schema', () => {
    expect(STRING_KEYS).toEqual(Object.keys(NEAR_VALID));
    expect(STRING_KEYS).toEqual(Object.keys(ACCEPTED));
  });

  it.each(STRING_KEYS)('%s: refused in one line, or every generated shell file reads it back exactly and runs nothing', async (key) => {
    let accepted = 0;
    await fc.assert(
      fc.asyncProperty(valueFor(key), async (value) => {
        let config: BuildConfig;
        try {
          config = resolveConfig(rawConfig(key, value));
        } catch (error) {
          expect(error).toBeInstanceOf(UserError);
          expect((error as Error).message).not.toMatch(/[\r\n]/);
          return;
        }
        accepted += 1;
        await checkGenerated(config, join(work, 'sample'));
      }),
      { numRuns: 15, examples: [[ACCEPTED[key]]] },
    );
    // The samples must reach the templates, or the property says nothing about them.
    expect(accepted).toBeGreaterThanOrEqual(1);
  });

  it("refuses the export of the finding: /srv/a'$(touch${IFS}/tmp/x)'b", () => {
    expect(() => resolveConfig({ nfs: { export: "/srv/a'$(touch${IFS}/tmp/x)'b" } })).toThrow(
      /^config key nfs\.export .* is not a plain path/,
    );
  });
});

describe('a real build with a hostile value the grammar lets through', () => {
  it('writes the bundle path and the key comment into the image as they are, and runs nothing', async () => {
    const dir = await tempDir();
    const bundleDir = join(dir, `we'ird $(touch canary) "dir"`);
    await mkdir(bundleDir);
    const bundle = join(bundleDir, 'docker `touch canary`.tgz');
    await makeBundle(bundle, bundleFiles());
    const key = `${HOST_KEY} me@laptop $(touch canary) 'a' "b" \`touch canary\` ; touch canary`;
    const configFile = join(dir, 'config.json');
    await writeFile(configFile, JSON.stringify({ nfs: { export: '/srv/c2+x_1.0' }, docker: { bundle }, ssh: { authorizedKeys: [key] } }));
    const out = join(dir, 'out');
    const run = await buildImage(['--input', await stockImage('stock'), '--out', out, '--name', 'hostile', '--config', configFile]);
    expect(run.code, run.stderr).toBe(0);
    const img = join(out, 'hostile.img');
    const record = JSON.parse(await debugfsCat(img, '/usr/local/share/odroid-buildx-image/docker-bundle.json'));
    expect(record.origin).toBe(bundle);
    expect((await debugfsCat(img, '/root/.ssh/authorized_keys')).split('\n')).toContain(key);
    const storage = await debugfsCat(img, '/usr/local/sbin/builder-storage');
    expect(storage).toContain('\nNFS_SHARE=10.0.0.1:/srv/c2+x_1.0\n');
    execFileSync('sh', ['-n', '-c', storage]);
    for (const place of [dir, bundleDir, out]) expect(existsSync(join(place, 'canary'))).toBe(false);
  });
});
