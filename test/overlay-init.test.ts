import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { renderTemplate } from '../src/engine/templates.js';
import { skipWithout } from './support/images.js';

const TEMPLATE = 'readonly-root/sbin/overlay-init.mustache';
const DEFAULTS = { tmpfsSize: '50%', realInit: '/sbin/init' };

// Excerpts of real /proc/filesystems listings: a mainline kernel, HardKernel's 3.16 with its
// overlayfs and aufs modules loaded, and a kernel with neither.
const MAINLINE = 'nodev\tsysfs\nnodev\ttmpfs\nnodev\tproc\n\text3\n\text4\nnodev\toverlay\nnodev\tautofs\n';
const HARDKERNEL_3_16 = 'nodev\tsysfs\nnodev\trootfs\nnodev\tproc\nnodev\ttmpfs\n\text4\n\tvfat\nnodev\toverlayfs\nnodev\taufs\n';
const NEITHER = 'nodev\tsysfs\nnodev\tproc\nnodev\ttmpfs\n\text4\n\tvfat\n';
const AUFS_ONLY = 'nodev\tsysfs\nnodev\tproc\n\text4\nnodev\taufs\n';

let dir: string;
const sh = (...args: string[]) => spawnSync('sh', args, { encoding: 'utf8' });

async function writeScript(name: string, view: object): Promise<string> {
  const file = path.join(dir, name);
  writeFileSync(file, await renderTemplate(TEMPLATE, view), { mode: 0o755 });
  return file;
}

beforeAll(() => {
  dir = mkdtempSync(path.join(tmpdir(), 'overlay-init-'));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('overlay-init template', () => {
  it('renders the settings verbatim and passes shellcheck -s sh', async () => {
    const script = await writeScript('overlay-init', DEFAULTS);
    const text = readFileSync(script, 'utf8');
    expect(text).toContain('REAL_INIT=/sbin/init\nTMPFS_SIZE=50%\n');
    expect(text).not.toContain('{{');
    const check = spawnSync('shellcheck', ['-s', 'sh', script], { encoding: 'utf8' });
    expect(check.error).toBeUndefined();
    expect(check.stdout + check.stderr).toBe('');
    expect(check.status).toBe(0);
  });

  it('chooses overlay > overlayfs > aufs from /proc/filesystems', async () => {
    const script = await writeScript('overlay-init', DEFAULTS);
    const choose = (listing: string) => {
      const file = path.join(dir, 'filesystems');
      writeFileSync(file, listing);
      const run = sh(script, '--choose', file);
      expect(run.stderr).toBe('');
      expect(run.status).toBe(0);
      return run.stdout;
    };
    expect(choose(MAINLINE)).toBe('overlay\n');
    expect(choose(HARDKERNEL_3_16)).toBe('overlayfs\n');
    expect(choose(NEITHER)).toBe('none\n');
    expect(choose(AUFS_ONLY)).toBe('aufs\n');
    expect(choose(HARDKERNEL_3_16 + MAINLINE)).toBe('overlay\n');
  });

  it('gives each overlay type its own mount options', async () => {
    const script = await writeScript('overlay-init', DEFAULTS);
    const mountArgs = (type: string) => sh(script, '--mount-args', type, '/', '/mnt/upper', '/mnt/work');
    expect(mountArgs('overlay').stdout).toBe('-t overlay -o lowerdir=/,upperdir=/mnt/upper,workdir=/mnt/work\n');
    // the 3.14/3.16 overlayfs rejects workdir=
    expect(mountArgs('overlayfs').stdout).toBe('-t overlayfs -o lowerdir=/,upperdir=/mnt/upper\n');
    expect(mountArgs('aufs').stdout).toBe('-t aufs -o br=/mnt/upper=rw:/=ro\n');
    const unknown = mountArgs('btrfs');
    expect(unknown.status).toBe(2);
    expect(unknown.stderr).toContain('unknown overlay type: btrfs');
  });

  it('refuses to mount anything unless it is PID 1', async () => {
    const run = sh(await writeScript('overlay-init', DEFAULTS));
    expect(run.status).toBe(2);
    expect(run.stderr).toContain('init=/sbin/overlay-init');
  });
});

// The boot itself, as PID 1 of a private mount and PID namespace on this machine's kernel (mainline
// overlay only). The "init" is a shell printing what it sees; it writes only when / is the overlay.
const cannotBoot = skipWithout({
  root: process.getuid?.() === 0,
  'a private mount and PID namespace (unshare -m --pid --fork --mount-proc)':
    spawnSync('unshare', ['-m', '--pid', '--fork', '--mount-proc', 'true']).status === 0,
  findmnt: spawnSync('findmnt', ['--version']).status === 0,
});

describe.skipIf(cannotBoot)('overlay-init as PID 1 in a namespace', () => {
  const fstype = (mountpoint: string) => `$(findmnt -no FSTYPE ${mountpoint} | head -n1)`;
  const probe = [
    'echo "args=$*"',
    `echo "root=${fstype('/')}"`,
    `echo "root-ro=${fstype('/media/root-ro')}"`,
    `echo "root-rw=${fstype('/media/root-rw')}"`,
    `if [ "${fstype('/')}" = overlay ]; then`,
    '  echo x > /overlay-init-probe',
    '  [ -e /media/root-ro/overlay-init-probe ] && echo leaked-to-real-root',
    '  [ -e /media/root-rw/upper/overlay-init-probe ] && echo kept-in-tmpfs',
    'fi',
  ].join('\n');
  const hostRoot = () => spawnSync('findmnt', ['-no', 'FSTYPE', '/'], { encoding: 'utf8' }).stdout.trim();

  it('pivots onto a tmpfs overlay and execs the real init with its arguments', async () => {
    const script = await writeScript('overlay-init-boot', { ...DEFAULTS, realInit: '/bin/sh' });
    const run = spawnSync('unshare', ['-m', '--pid', '--fork', '--mount-proc', 'sh', script, '-c', probe, 'init', 'single'], {
      encoding: 'utf8',
    });
    expect(run.stdout).toBe(`args=single\nroot=overlay\nroot-ro=${hostRoot()}\nroot-rw=tmpfs\nkept-in-tmpfs\n`);
    expect(run.status).toBe(0);
  });

  it('boots without the overlay when the kernel command line has overlayroot=disabled', async () => {
    const script = await writeScript('overlay-init-boot', { ...DEFAULTS, realInit: '/bin/sh' });
    const cmdline = path.join(dir, 'cmdline');
    writeFileSync(cmdline, 'root=UUID=e139ce78-9841-40fe-8823-96a304a09859 ro overlayroot=disabled\n');
    const run = spawnSync(
      'unshare',
      [
        '-m',
        '--pid',
        '--fork',
        '--mount-proc',
        'sh',
        '-c',
        'mount --bind "$1" /proc/cmdline && exec sh "$2" -c "$3" init',
        'wrapper',
        cmdline,
        script,
        `echo "${fstype('/')}"`,
      ],
      {
        encoding: 'utf8',
      },
    );
    expect(run.stdout).toBe(`${hostRoot()}\n`);
    expect(run.status).toBe(0);
  });
});
