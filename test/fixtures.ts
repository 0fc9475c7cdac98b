/*
 * Test fixtures: disk images laid out like HardKernel's stock ODROID-C2 image, built by
 * test/fixtures/make-stock-image.sh and cached under .cache/fixtures/, plus helpers that
 * inspect an image with the real tools (sfdisk, debugfs, dumpe2fs, e2fsck, mtools, fsck.fat)
 * so tests never check our code with our own code.
 */
import { execFile as execFileCallback } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { access, mkdir, mkdtemp, readdir, readFile, rename, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

const execFile = promisify(execFileCallback);

export const ROOT_UUID = 'e139ce78-9841-40fe-8823-96a304a09859';
/** An SSH public key line, for configs' ssh.authorizedKeys. */
export const AUTHORIZED_KEY = 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHxYx3PbR1b0wE4y8R2e6u3W5iK0Jw8rC3yY4z1Qk2aB me@laptop';
/** HardKernel's real boot files: shared/ sits beside the repository checkout (in CI too). */
export const REFERENCE_DIR = fileURLToPath(new URL('../../shared/reference', import.meta.url));
export const FIXTURE_VARIANTS = ['stock', 'fat16', 'legacy-ext4', 'dirty-journal', 'gpt', 'no-ext4', 'zero', 'c4'] as const;
export type FixtureVariant = (typeof FIXTURE_VARIANTS)[number];

const REPO = fileURLToPath(new URL('..', import.meta.url));
const SCRIPTS_DIR = join(REPO, 'test/fixtures');
const SCRIPT = join(SCRIPTS_DIR, 'make-stock-image.sh');
// The script and the layout code it sources: a change to either is a new fixture.
const SCRIPT_FILES = ['make-stock-image.sh', 'assemble-image.sh', 'dts/c2-hardkernel.dts', 'dts/c2-mainline.dts'];
const CACHE_DIR = join(REPO, '.cache/fixtures');
// The reference files the script copies into the images: a change to any of them is a new fixture.
const REFERENCE_FILES = ['odroid-c2/boot.ini', 'odroid-c2/boot.ini.default', 'odroid-c4/boot.ini', 'odroid-c4/config.ini'];
const SECTOR = 512;
const MAX_OUTPUT = 64 * 1024 * 1024;
const LINUX_TYPES = new Set(['83', '0FC63DAF-8483-4772-8E79-3D69D8477DE4']);

let fixtureHash: Promise<string> | undefined;
const building = new Map<string, Promise<string>>();

/** The disk size of the fixtures unless a test asks for another: the stock content fits far smaller. */
const DEFAULT_SIZE_MIB = 1024;

export interface FixtureOptions {
  /**
   * The disk's size (the rootfs partition grows to fill it). Smaller for tests whose cost is
   * every byte of the image, such as --release (sha256 and xz read all of it, holes included).
   */
  sizeMiB?: number;
  /** The rootfs's network software and the device tree's shape (make-stock-image.sh's NETWORK_STACK, DEVICE_TREE). */
  network?: NetworkStackVariant;
  deviceTree?: 'random' | 'hardkernel' | 'mainline';
  /** /bin, /sbin and /lib as links into /usr. */
  mergedUsr?: boolean;
}

export const NETWORK_STACK_VARIANTS = [
  'ifupdown',
  'ifupdown-installed',
  'ifupdown-interfaces-d',
  'ifupdown-no-binary',
  'netplan',
  'networkd',
  'networkmanager',
  'none',
] as const;
export type NetworkStackVariant = (typeof NETWORK_STACK_VARIANTS)[number];

function computeFixtureHash(): Promise<string> {
  fixtureHash ??= (async () => {
    const hash = createHash('sha256');
    for (const file of SCRIPT_FILES) hash.update(file).update(await readFile(join(SCRIPTS_DIR, file)));
    for (const file of REFERENCE_FILES) hash.update(file).update(await readFile(join(REFERENCE_DIR, file)));
    return hash.digest('hex').slice(0, 12);
  })();
  return fixtureHash;
}

const exists = (path: string) => access(path).then(() => true, () => false);

/**
 * The path of a cached fixture image, built on first use. Tests must not write to it:
 * use copyOfStockImage for that.
 */
export function stockImage(variant: FixtureVariant = 'stock', options: FixtureOptions = {}): Promise<string> {
  const sizeMiB = options.sizeMiB ?? DEFAULT_SIZE_MIB;
  const env: Record<string, string> = { DISK_SIZE_MIB: String(sizeMiB) };
  if (options.network) env.NETWORK_STACK = options.network;
  if (options.deviceTree) env.DEVICE_TREE = options.deviceTree;
  if (options.mergedUsr) env.MERGED_USR = '1';
  // The defaults keep the plain name: <variant>-<hash>.img; others add <size>m, the stack, the tree, usrmerge.
  const name = [
    variant,
    sizeMiB === DEFAULT_SIZE_MIB ? undefined : `${sizeMiB}m`,
    options.network,
    options.deviceTree,
    options.mergedUsr ? 'usrmerge' : undefined,
  ]
    .filter(Boolean)
    .join('-');
  let image = building.get(name);
  if (!image) {
    image = buildFixture(variant, name, env);
    // A failed build must not stick: the next caller tries again.
    image.catch(() => building.delete(name));
    building.set(name, image);
  }
  return image;
}

async function buildFixture(variant: FixtureVariant, name: string, env: Record<string, string>): Promise<string> {
  const path = join(CACHE_DIR, `${name}-${await computeFixtureHash()}.img`);
  if (await exists(path)) return path;
  await mkdir(CACHE_DIR, { recursive: true });
  // Other vitest workers may build the same fixture at the same time: each builds its own
  // file and renames it into place, which is atomic, and the builds are byte-identical.
  const partial = `${path}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`;
  try {
    await execFile('bash', [SCRIPT, partial, variant], { env: { ...process.env, REFERENCE_DIR, ...env }, maxBuffer: MAX_OUTPUT });
    await rename(partial, path);
  } finally {
    await rm(partial, { force: true });
  }
  await removeStaleFixtures(name, basename(path));
  return path;
}

/** Drops this fixture's images built by an older script or older reference files. */
async function removeStaleFixtures(name: string, current: string): Promise<void> {
  const stale = new RegExp(`^${name}-[0-9a-f]{12}\\.img$`);
  for (const name of await readdir(CACHE_DIR)) {
    if (name !== current && stale.test(name)) await rm(join(CACHE_DIR, name), { force: true });
  }
}

/** A private, writable, sparse copy of a fixture image in dir, named <variant>.img. */
export async function copyOfStockImage(variant: FixtureVariant, dir: string, options: FixtureOptions = {}): Promise<string> {
  const copy = join(dir, `${variant}.img`);
  await execFile('cp', ['--sparse=always', await stockImage(variant, options), copy]);
  return copy;
}

/**
 * For describe.skipIf: true when this machine lacks any of `needs` (each requirement, in words,
 * to whether it is here). A developer's machine may skip those tests; CI (with CI set) must run
 * them all, so there a lack is an error naming it, not tests passing unseen.
 */
export function skipWithout(needs: Record<string, boolean>): boolean {
  const missing = Object.entries(needs).filter(([, here]) => !here).map(([what]) => what);
  if (missing.length === 0) return false;
  if (process.env.CI) throw new Error(`CI is set, so no test may be skipped, but this machine lacks ${missing.join(' and ')}`);
  return true;
}

/** A fresh directory under the OS temp dir; the caller removes it or leaves it to the OS. */
export function tempDir(): Promise<string> {
  return mkdtemp(join(tmpdir(), 'odroid-test-'));
}

export interface FixturePartition {
  /** 1-based, from the partition's device node name. */
  number: number;
  /** In bytes from the start of the image. */
  offset: number;
  size: number;
  /** As sfdisk prints it: an MBR type in hex ("c", "83") or a GPT type GUID. */
  type: string;
}

export interface PartitionTable {
  label: 'dos' | 'gpt';
  /** "0x3ced3aea" for MBR, a GUID for GPT. */
  id: string;
  partitions: FixturePartition[];
}

interface SfdiskJson {
  partitiontable: {
    label: 'dos' | 'gpt';
    id: string;
    sectorsize?: number;
    partitions?: { node: string; start: number; size: number; type: string }[];
  };
}

/** The partition table as sfdisk reads it; rejects when there is none. */
export async function partitionOffsets(img: string): Promise<PartitionTable> {
  const { stdout } = await execFile('sfdisk', ['--json', img]);
  const table = (JSON.parse(stdout) as SfdiskJson).partitiontable;
  const sectorSize = table.sectorsize ?? SECTOR;
  return {
    label: table.label,
    id: table.id,
    partitions: (table.partitions ?? []).map((p) => ({
      number: Number(/(\d+)$/.exec(p.node)![1]),
      offset: p.start * sectorSize,
      size: p.size * sectorSize,
      type: p.type,
    })),
  };
}

async function partitionOffset(img: string, wanted: (p: FixturePartition) => boolean, what: string): Promise<number> {
  const partition = (await partitionOffsets(img)).partitions.find(wanted);
  if (!partition) throw new Error(`${img} has no ${what} partition`);
  return partition.offset;
}

// libext2fs (debugfs, dumpe2fs, e2fsck) opens "file?offset=N" as the file system at byte N
// of the file, so the tools read the rootfs in place without a loop device.
async function rootfsSpec(img: string): Promise<string> {
  return `${img}?offset=${await partitionOffset(img, (p) => LINUX_TYPES.has(p.type.toUpperCase()), 'Linux')}`;
}

/** Runs a tool and returns its exit status and combined output instead of throwing on failure. */
async function check(command: string, args: string[]): Promise<{ ok: boolean; output: string }> {
  try {
    const { stdout, stderr } = await execFile(command, args, { maxBuffer: MAX_OUTPUT });
    return { ok: true, output: stdout + stderr };
  } catch (error) {
    const e = error as { code?: unknown; stdout?: string; stderr?: string };
    if (typeof e.code !== 'number') throw error;
    return { ok: false, output: `${e.stdout ?? ''}${e.stderr ?? ''}` };
  }
}

/**
 * Runs one debugfs request on the rootfs. debugfs exits 0 even when the request fails and
 * reports on stderr after its version banner, so any other stderr line is the error.
 */
async function debugfs(img: string, request: string): Promise<{ stdout: string; error?: string }> {
  const { stdout, stderr } = await execFile('debugfs', ['-R', request, await rootfsSpec(img)], { maxBuffer: MAX_OUTPUT });
  const error = stderr.split('\n').filter((line) => line && !line.startsWith('debugfs ')).join('\n');
  return { stdout, error: error || undefined };
}

const quote = (path: string) => `"${path}"`;

/** A file's contents as debugfs reads them from the rootfs. */
export async function debugfsCat(img: string, path: string): Promise<string> {
  const { stdout, error } = await debugfs(img, `cat ${quote(path)}`);
  if (error) throw new Error(`debugfs cat ${path}: ${error}`);
  return stdout;
}

export interface DebugfsStat {
  /** Permission bits including setuid, setgid and sticky (0o1777 for /tmp). */
  mode: number;
  uid: number;
  gid: number;
  /** debugfs's word: "regular", "directory", "symlink", ... */
  type: string;
  size: number;
  /** For a symlink, where it points. */
  target?: string;
}

/** An inode as debugfs reports it (without following a final symlink), or undefined if absent. */
export async function debugfsStat(img: string, path: string): Promise<DebugfsStat | undefined> {
  const { stdout, error } = await debugfs(img, `stat ${quote(path)}`);
  if (error && /not found/i.test(error)) return undefined;
  if (error) throw new Error(`debugfs stat ${path}: ${error}`);
  const field = (pattern: RegExp) => {
    const match = pattern.exec(stdout);
    if (!match) throw new Error(`debugfs stat ${path}: no ${pattern.source} in:\n${stdout}`);
    return match[1];
  };
  const target = /Fast link dest: "(.*)"/.exec(stdout)?.[1];
  return {
    mode: parseInt(field(/Mode:\s+(\d+)/), 8),
    uid: Number(field(/User:\s+(\d+)/)),
    gid: Number(field(/Group:\s+(\d+)/)),
    type: field(/Type: (\S+)/),
    size: Number(field(/Size: (\d+)/)),
    ...(target === undefined ? {} : { target }),
  };
}

/** The rootfs superblock as `dumpe2fs -h` prints it, e.g. { 'Filesystem UUID': '...' }. */
export async function dumpe2fsHeader(img: string): Promise<Record<string, string>> {
  const { stdout } = await execFile('dumpe2fs', ['-h', await rootfsSpec(img)], { maxBuffer: MAX_OUTPUT });
  const fields: Record<string, string> = {};
  for (const line of stdout.split('\n')) {
    const match = /^([^:]+):\s*(.*)$/.exec(line);
    if (match) fields[match[1]] ??= match[2].trim();
  }
  return fields;
}

const bootOffset = (img: string) => partitionOffset(img, (p) => p.number === 1, 'boot');
// mtools refuses a FAT whose size is not a whole number of CHS tracks unless told not to check.
const MTOOLS_ENV = { ...process.env, MTOOLS_SKIP_CHECK: '1' };

/** A file from the boot partition as mtools reads it. */
export async function mtypeBoot(img: string, path: string): Promise<string> {
  const { stdout } = await execFile('mtype', ['-i', `${img}@@${await bootOffset(img)}`, `::${path}`], {
    env: MTOOLS_ENV,
    maxBuffer: MAX_OUTPUT,
  });
  return stdout;
}

/**
 * Both partitions copied out with the real tools, for `diff -r`: the rootfs by debugfs rdump
 * (keeping modes and owners) at the top, the FAT by mcopy under BOOT/.
 */
export async function dumpPartitions(img: string): Promise<string> {
  const dir = await tempDir();
  const { partitions } = await partitionOffsets(img);
  const [boot, rootfs] = partitions;
  await execFile('debugfs', ['-R', `rdump / ${dir}`, `${img}?offset=${rootfs.offset}`], { maxBuffer: MAX_OUTPUT });
  await mkdir(join(dir, 'BOOT'));
  await execFile('mcopy', ['-s', '-n', '-i', `${img}@@${boot.offset}`, '::/*', join(dir, 'BOOT')], { env: MTOOLS_ENV });
  return dir;
}

/** A rootfs directory copied out by debugfs rdump (keeping modes and owners): the path of the copy. */
export async function debugfsDumpDir(img: string, dir: string): Promise<string> {
  const copy = join(await tempDir(), basename(dir));
  // debugfs reports a missing directory on stderr and exits 0.
  await execFile('debugfs', ['-R', `rdump ${quote(dir)} ${quote(dirname(copy))}`, await rootfsSpec(img)], { maxBuffer: MAX_OUTPUT });
  if (!(await exists(copy))) throw new Error(`debugfs rdump ${dir}: not in the rootfs of ${img}`);
  return copy;
}

/** Every path under `dir` with its mode, owner and type, sorted: what diff -r does not compare. */
export async function treeListing(dir: string): Promise<string[]> {
  const { stdout } = await execFile('find', ['.', '-printf', '%p %m %U:%G %y\n'], { cwd: dir, maxBuffer: MAX_OUTPUT });
  return stdout.split('\n').sort();
}

/** `e2fsck -fn` on the rootfs: ok when it finds nothing to fix. */
export async function e2fsckClean(img: string): Promise<{ ok: boolean; output: string }> {
  return check('e2fsck', ['-fn', await rootfsSpec(img)]);
}

/** `fsck.fat -n` on the boot partition: ok when it finds nothing to fix. */
export async function fsckFatClean(img: string): Promise<{ ok: boolean; output: string }> {
  const { partitions } = await partitionOffsets(img);
  const boot = partitions.find((p) => p.number === 1);
  if (!boot) throw new Error(`${img} has no boot partition`);
  // fsck.fat has no offset option: it checks a sparse copy of the partition.
  const dir = await tempDir();
  try {
    const copy = join(dir, 'boot.fat');
    await execFile('dd', [
      `if=${img}`, `of=${copy}`, 'bs=1M', 'iflag=skip_bytes,count_bytes', `skip=${boot.offset}`, `count=${boot.size}`,
      'conv=sparse', 'status=none',
    ]);
    return await check('fsck.fat', ['-n', copy]);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}
