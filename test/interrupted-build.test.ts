/*
 * Builds stopped half-way: killed outright at ten points across their stages, stopped by SIGINT
 * or SIGTERM, or started while another build holds --out. Each kill lands at a named point of the
 * build (ODROID_BUILD_KILL_AT, src/timing.ts), never at a time. After the kills one ordinary build
 * must leave --out holding only its documented files, every key pair matching.
 */
import { execFile, execFileSync } from 'node:child_process';
import { readdir, readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { KIT_MARKER } from '../src/output/out-layout.js';
import { configWithFakeBundle } from './docker-bundle-fixture.js';
import { keyMatchesCertificate } from './kit-helpers.js';
import { LAUNCH, REPO } from './support/cli.js';
import { debugfsCat } from './support/debugfs.js';
import { SMALL_SIZE_MIB, stockImage, tempDir } from './support/images.js';

const NAME = 'k';

interface Run {
  code: number | null;
  signal: NodeJS.Signals | null;
  stderr: string;
}

let input: string;
let config: string;
beforeAll(async () => {
  // The small fixture: the checksum (--checksum, --release) reads every byte of the image.
  input = await stockImage('stock', { sizeMiB: SMALL_SIZE_MIB });
  config = await configWithFakeBundle(await tempDir());
});

/** build.ts into `out`, stopped at `point` by `signal` when given. */
function build(out: string, extra: string[], point?: string, signal = 'SIGKILL'): Promise<Run> {
  const env = { ...process.env, ...(point ? { ODROID_BUILD_KILL_AT: point, ODROID_BUILD_KILL_WITH: signal } : {}) };
  const [command, ...launch] = LAUNCH;
  const args = [...launch, join(REPO, 'build.ts'), '--input', input, '--out', out, '--name', NAME, '--config', config, ...extra];
  return new Promise((resolve) => {
    const child = execFile(command, args, { cwd: REPO, env, maxBuffer: 16 << 20 }, (_error, _stdout, stderr) => {
      resolve({ code: child.exitCode, signal: child.signalCode, stderr });
    });
  });
}

/** A build killed by SIGKILL (node runs the bundled build in its own process). */
const killed = (run: Run) => run.signal === 'SIGKILL';

/** Every path under `dir` whose name starts with a dot, relative to `dir`, but the host kit's marker. */
async function hidden(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { recursive: true });
  return entries.filter((path) => path !== join('host', KIT_MARKER) && path.split('/').some((part) => part.startsWith('.'))).sort();
}

async function mode(path: string): Promise<string> {
  return ((await stat(path)).mode & 0o777).toString(8);
}

/** Where a killed build stops, with what it adds to the command line, and what it must have left. */
const KILLS: { point: string; extra: string[]; left: RegExp[] }[] = [
  { point: 'after copy', extra: [], left: [/^\.k\.img\.\d+\.tmp$/] },
  { point: 'step docker', extra: [], left: [/^\.k\.img\.\d+\.tmp$/] },
  { point: 'checksum', extra: ['--checksum'], left: [/^\.k\.img\.\d+\.tmp$/] },
  { point: 'ssh-keygen', extra: ['--rotate-secrets'], left: [/^\.secrets\.new-\w+$/, /^\.secrets\.new-\w+\/ssh\/\.new-\w+$/] },
  { point: 'tls', extra: ['--rotate-secrets'], left: [/^\.secrets\.new-\w+\/tls\/\.new-\w+\/key\.pem$/] },
  { point: 'xz', extra: ['--release'], left: [/^\.k\.img\.xz\.\d+\.tmp$/] },
  { point: 'after host kit', extra: ['--rotate-secrets'], left: [/^\.host\.new-\w+$/, /^\.secrets\.new-\w+$/] },
  { point: 'after checksums', extra: ['--checksum'], left: [/^\.k\.img\.sha256\.\d+\.tmp$/] },
  { point: 'replace secrets', extra: ['--rotate-secrets'], left: [/^\.secrets\.old-\w+\/old$/, /^\.secrets\.new-\w+$/] },
  { point: 'rename images', extra: ['--rotate-secrets'], left: [/^\.k\.img\.\d+\.tmp$/] },
];

describe('builds killed at ten points, then one ordinary build into the same --out', () => {
  let out: string;
  beforeAll(async () => {
    out = await tempDir();
  });

  for (const { point, extra, left } of KILLS) {
    it(`killed at "${point}" (${extra.join(' ') || 'plain build'}): leaves only its own temp files, the earlier ones gone`, async () => {
      const run = await build(out, extra, point);
      expect(killed(run), run.stderr).toBe(true);
      const leftovers = await hidden(out);
      for (const pattern of left) expect(leftovers, `${pattern}`).toContainEqual(expect.stringMatching(pattern));
      // Every temp file is this run's: the build removed what the earlier kills left.
      const pid = (await readFile(join(out, '.build.lock'), 'utf8')).trim();
      const pids = leftovers.map((path) => /\.(\d+)\.tmp$/.exec(path)?.[1]).filter(Boolean);
      expect(new Set(pids)).toEqual(new Set(pids.length ? [pid] : []));
      // Pending secrets are private.
      for (const dir of leftovers.filter((path) => /(^|\/)\.(secrets\.)?new-\w+$/.test(path)))
        expect(await mode(join(out, dir)), dir).toBe('700');
      // So are images being written: they hold the device's private keys.
      for (const image of leftovers.filter((path) => /^\.k\.img(\.xz)?\.\d+\.tmp$/.test(path)))
        expect(await mode(join(out, image)), image).toBe('600');
    });
  }

  it('the next build removes every leftover and leaves only the documented files, every key pair matching', async () => {
    const run = await build(out, []);
    expect(run.stderr).not.toMatch(/internal error/);
    expect(run.code, run.stderr).toBe(0);
    expect(run.stderr).toMatch(/^removed what an interrupted build left in /m);
    expect((await readdir(out)).sort()).toEqual(['host', 'k.img', 'secrets']);
    expect(await hidden(out)).toEqual([]);
    expect((await readdir(join(out, 'secrets/tls'))).sort()).toEqual(['ca', 'client', 'server-k']);

    const tls = join(out, 'secrets/tls');
    for (const pair of ['ca', 'client', 'server-k'])
      expect(keyMatchesCertificate(join(tls, pair, 'key.pem'), join(tls, pair, 'cert.pem')), pair).toBe(true);
    expect(keyMatchesCertificate(join(out, 'host/tls/key.pem'), join(out, 'host/tls/cert.pem'))).toBe(true);
    expect(await readFile(join(out, 'host/tls/cert.pem'), 'utf8')).toBe(await readFile(join(tls, 'client/cert.pem'), 'utf8'));
    expect(await readFile(join(out, 'host/tls/ca.pem'), 'utf8')).toBe(await readFile(join(tls, 'ca/cert.pem'), 'utf8'));
    execFileSync('openssl', ['verify', '-CAfile', join(tls, 'ca/cert.pem'), join(tls, 'server-k/cert.pem'), join(tls, 'client/cert.pem')]);

    const ssh = join(out, 'secrets/ssh');
    expect((await readdir(ssh)).sort()).toEqual(
      ['ecdsa', 'ed25519', 'rsa'].flatMap((type) => [`ssh_host_${type}_key`, `ssh_host_${type}_key.pub`]),
    );
    for (const type of ['ecdsa', 'ed25519', 'rsa']) {
      const key = join(ssh, `ssh_host_${type}_key`);
      const typeAndKey = (line: string) => line.trim().split(/\s+/).slice(0, 2).join(' ');
      const derived = typeAndKey(execFileSync('ssh-keygen', ['-y', '-f', key], { encoding: 'utf8' }));
      const published = typeAndKey(await readFile(`${key}.pub`, 'utf8'));
      expect(derived, type).toBe(published);
    }
    // The image carries the same pairs.
    const img = join(out, 'k.img');
    expect(await debugfsCat(img, '/etc/docker/tls/server-cert.pem')).toBe(await readFile(join(tls, 'server-k/cert.pem'), 'utf8'));
    expect(await debugfsCat(img, '/etc/ssh/ssh_host_ed25519_key.pub')).toBe(await readFile(join(ssh, 'ssh_host_ed25519_key.pub'), 'utf8'));
  });
});

describe('builds stopped by a signal', () => {
  it.each([
    { signal: 'SIGINT', status: 130, point: 'after copy', extra: [] },
    { signal: 'SIGTERM', status: 143, point: 'tls', extra: ['--rotate-secrets'] },
  ])('$signal at "$point" removes its temp files and pending secrets and exits $status', async ({ signal, status, point, extra }) => {
    const out = await tempDir();
    const run = await build(out, extra, point, signal);
    expect(run.code, run.stderr).toBe(status);
    expect(run.stderr).toMatch(new RegExp(`^interrupted \\(${signal}\\): no image written`, 'm'));
    expect(await hidden(out)).toEqual([]);
    expect((await readdir(out)).filter((name) => name !== 'secrets')).toEqual([]);
  });
});

describe('two builds into one --out', () => {
  it('the second is refused in one line naming the first by its pid', async () => {
    const out = await tempDir();
    // The first build stops itself (SIGSTOP) holding the lock, and stays stopped until killed.
    const first = build(out, [], 'after copy', 'SIGSTOP');
    const lock = join(out, '.build.lock');
    // Its pid in the lock file means it holds the lock (polled: how soon it gets there does not matter).
    let pid = '';
    while (!/^\d+$/.test(pid)) {
      await new Promise((resolve) => setTimeout(resolve, 100));
      pid = (await readFile(lock, 'utf8').catch(() => '')).trim();
    }
    const second = await build(out, []);
    process.kill(Number(pid), 'SIGKILL');
    await first;
    expect(second.code).toBe(1);
    const errors = second.stderr.split('\n').filter((line) => line.startsWith('error:'));
    expect(errors).toEqual([`error: another build (pid ${pid}) is writing into ${out}; wait for it to finish, or pass another --out`]);
  });
});
