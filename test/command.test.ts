/*
 * The tool as a command, not a script in a repository: the bin on PATH from any directory,
 * --version, usage errors (exit 2), stdout holding only what was asked for; `npm run` from
 * another directory with relative paths; a copied or moved checkout; `npm ci --omit=dev`.
 */
import { cp, mkdir, readFile, rename, rm, stat, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeBundle } from './docker-bundle-fixture.js';
import { copyCheckout } from './support/checkout.js';
import { REPO, type RunResult, runCommand } from './support/cli.js';
import { debugfsStat } from './support/debugfs.js';
import { stockImage, tempDir } from './support/images.js';

const PACKAGE = JSON.parse(await readFile(join(REPO, 'package.json'), 'utf8')) as { version: string; bin: Record<string, string> };
const BIN = 'odroid-buildx-image';
const VERSION_LINE = `${BIN} ${PACKAGE.version}\n`;

let dir: string;
/** A directory outside the checkout, where the user types the commands. */
let home: string;
/** A PATH with the bin on it, as `npm link` or `npm install -g` makes it. */
let path: string;

beforeAll(async () => {
  dir = await tempDir();
  home = join(dir, 'home');
  await mkdir(join(home, 'conf', 'bundle'), { recursive: true });
  await mkdir(join(dir, 'bin'));
  await symlink(join(REPO, PACKAGE.bin[BIN]), join(dir, 'bin', BIN));
  path = `${join(dir, 'bin')}:${process.env.PATH}`;
  // Relative paths only: the image, and a config whose bundle path is relative to the config's directory.
  await symlink(await stockImage('stock'), join(home, 'disk.img'));
  await makeBundle(join(home, 'conf', 'bundle', 'docker.tgz'));
  await writeFile(join(home, 'conf', 'offline.json'), JSON.stringify({ docker: { bundle: 'bundle/docker.tgz' } }));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

const bin = (args: string[], cwd = home): Promise<RunResult> => runCommand([BIN, ...args], { cwd, env: { PATH: path } });
/** `npm run -s <script> -- args` typed in `home`, with the checkout as npm's prefix. */
const npmRun = (script: string, args: string[]): Promise<RunResult> =>
  runCommand(['npm', '--prefix', REPO, 'run', '-s', script, '--', ...args], { cwd: home });

describe(`${BIN} on PATH, run from any directory`, () => {
  it('prints its version for --version, alone and with every command, and nothing else', async () => {
    for (const args of [['--version'], ['build', '--version'], ['inspect', '--version'], ['flash', '--version']]) {
      expect(await bin(args), args.join(' ')).toEqual({ code: 0, stdout: VERSION_LINE, stderr: '' });
    }
    expect(await npmRun('build-image', ['--version'])).toEqual({ code: 0, stdout: VERSION_LINE, stderr: '' });
  });

  it('prints help on stdout, nothing on stderr, exit 0', async () => {
    const top = await bin(['--help']);
    expect(top).toMatchObject({ code: 0, stderr: '' });
    expect(top.stdout).toMatch(/^usage: odroid-buildx-image COMMAND/);
    for (const command of ['build', 'inspect', 'flash']) {
      const help = await bin([command, '--help']);
      expect(help, command).toMatchObject({ code: 0, stderr: '' });
      expect(help.stdout, command).toMatch(/^usage: .*\n {2}[-A-Z]/);
    }
  });

  it('refuses a command line it cannot run with one error line and exit status 2', async () => {
    const cases = [[], ['bulid'], ['build', '--inptu', 'x.img'], ['inspect'], ['inspect', '--input'], ['flash', 'only-an-image.img']];
    for (const args of cases) {
      const run = await bin(args);
      expect(run.code, args.join(' ')).toBe(2);
      expect(run.stdout, args.join(' ')).toBe('');
      expect(run.stderr.trimEnd().split('\n'), args.join(' ')).toEqual([expect.stringMatching(/^error: /)]);
    }
  });

  it('inspect --json prints the JSON and nothing else on stdout, with --input relative to where it is typed', async () => {
    const viaBin = await bin(['inspect', '--input', 'disk.img', '--json']);
    expect(viaBin.code, viaBin.stderr).toBe(0);
    const report = JSON.parse(viaBin.stdout);
    expect(report.steps.length).toBeGreaterThan(0);
    // npm run changes into the checkout; -s keeps npm's own banner off stdout.
    const viaNpm = await npmRun('inspect', ['--input', 'disk.img', '--json']);
    expect(viaNpm.code, viaNpm.stderr).toBe(0);
    expect(JSON.parse(viaNpm.stdout)).toEqual(report);
  });

  it('npm run build-image from another directory: --input, --config and --out relative to it, docker.bundle to the config file', async () => {
    const run = await npmRun('build-image', ['--input', 'disk.img', '--config', 'conf/offline.json', '--out', 'out', '--name', 'relative']);
    expect(run.code, run.stderr).toBe(0);
    // The config sets no power.profile: the summary says what `full` means on a laptop's port.
    expect(run.stdout).toMatch(/^ {2}warning {2}power\.profile "full" .* laptop's USB port .* set power\.profile "usb2-0\.5A"/m);
    const img = join(home, 'out', 'relative.img');
    expect(await debugfsStat(img, '/usr/local/bin/dockerd')).toBeDefined();
    await expect(stat(join(REPO, 'out', 'relative.img'))).rejects.toMatchObject({ code: 'ENOENT' });
  });
});

describe('a copied checkout, then moved', () => {
  it('builds from its own overlays (its bundle in .cache/ names no absolute path), and again once moved', async () => {
    // The checkout's bundle of build.ts, current; the copy takes it along in its .cache/.
    const current = await runCommand([process.execPath, 'launch.mjs', 'build', '--list-steps'], { cwd: REPO });
    expect(current.code, current.stderr).toBe(0);
    const copy = await copyCheckout(join(dir, 'copy'), { linkModules: true });
    await cp(join(REPO, '.cache', 'launch', 'build.ts.mjs'), join(copy, '.cache', 'launch', 'build.ts.mjs'), { preserveTimestamps: true });
    // A file only the copy has: a build that reads the original checkout's overlays/ misses it.
    await mkdir(join(copy, 'overlays', 'rootfs', 'etc'), { recursive: true });
    await writeFile(join(copy, 'overlays', 'rootfs', 'etc', 'copied-checkout'), 'copy\n');
    const bundle = join('.cache', 'launch', 'build.ts.mjs');
    const made = (await stat(join(copy, bundle))).mtimeMs;
    expect(await readFile(join(copy, bundle), 'utf8')).not.toContain(REPO);

    const dryRun = (checkout: string) =>
      runCommand(
        [
          process.execPath,
          join(checkout, 'launch.mjs'),
          'build',
          '--input',
          'disk.img',
          '--config',
          'conf/offline.json',
          '--out',
          'o',
          '--dry-run',
        ],
        { cwd: home },
      );
    const inCopy = await dryRun(copy);
    expect(inCopy.code, inCopy.stderr).toBe(0);
    expect(inCopy.stdout).toContain('rootfs:/etc/copied-checkout');
    // The copy ran the bundle it brought along, not one made afresh.
    expect((await stat(join(copy, bundle))).mtimeMs).toBe(made);

    const moved = join(dir, 'moved');
    await rename(copy, moved);
    const inMoved = await dryRun(moved);
    expect(inMoved.stderr).not.toMatch(/internal error/);
    expect(inMoved.stderr.length).toBeLessThan(4096);
    expect(inMoved.code).toBe(0);
    expect(inMoved.stdout).toContain('rootfs:/etc/copied-checkout');
  });
});

describe('npm ci --omit=dev', () => {
  it('installs a tool that starts, builds and inspects', async () => {
    const checkout = await copyCheckout(join(dir, 'runtime-only'));
    // --prefer-offline: the packages come from npm's cache when it has them.
    const install = await runCommand(['npm', 'ci', '--omit=dev', '--prefer-offline', '--no-audit', '--no-fund'], { cwd: checkout });
    expect(install.code, install.stderr).toBe(0);
    // Only the runtime dependencies are there.
    await expect(stat(join(checkout, 'node_modules', 'vitest'))).rejects.toMatchObject({ code: 'ENOENT' });
    const launch = [process.execPath, join(checkout, 'launch.mjs')];
    const build = await runCommand(
      [...launch, 'build', '--input', 'disk.img', '--config', 'conf/offline.json', '--out', 'o', '--name', 'runtime'],
      {
        cwd: home,
      },
    );
    expect(build.code, build.stderr).toBe(0);
    const inspect = await runCommand([...launch, 'inspect', '--input', 'o/runtime.img', '--json'], { cwd: home });
    expect(inspect.code, inspect.stderr).toBe(0);
    expect(JSON.parse(inspect.stdout).stamp).toMatchObject({ name: 'runtime' });
  });
});
