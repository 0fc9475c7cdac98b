/*
 * Test fixtures: disk images laid out like HardKernel's stock ODROID-C2 image, built by
 * test/fixtures/make-stock-image.sh, and like Raspberry Pi OS Lite (the raspios-* variants), built
 * by test/fixtures/make-raspios-image.sh, cached under .cache/fixtures/, and where their
 * partitions are as sfdisk reads them.
 */
import { execFile as execFileCallback } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { access, mkdir, mkdtemp, readdir, readFile, rename, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { promisify } from 'node:util';
import { REPO } from './cli.js';
import { referenceDir, referencePath } from './reference.js';

const execFile = promisify(execFileCallback);

export const ROOT_UUID = 'e139ce78-9841-40fe-8823-96a304a09859';
/** An SSH public key line, for configs' ssh.authorizedKeys. */
export const AUTHORIZED_KEY = 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHxYx3PbR1b0wE4y8R2e6u3W5iK0Jw8rC3yY4z1Qk2aB me@laptop';
export const FIXTURE_VARIANTS = [
  'stock',
  'fat16',
  'legacy-ext4',
  'dirty-journal',
  'gpt',
  'no-ext4',
  'zero',
  'c4',
  'raspios-bookworm',
  'raspios-bookworm-4m',
  'raspios-trixie',
] as const;
export type FixtureVariant = (typeof FIXTURE_VARIANTS)[number];

const SCRIPTS_DIR = join(REPO, 'test/fixtures');
const SCRIPT = join(SCRIPTS_DIR, 'make-stock-image.sh');
const RASPIOS_SCRIPT = join(SCRIPTS_DIR, 'make-raspios-image.sh');
/** The Raspberry Pi OS variants: `raspios-<release>`, made by make-raspios-image.sh. */
const RASPIOS = 'raspios-';
// The scripts and the layout code they source: a change to any is a new fixture.
const SCRIPT_FILES = [
  'make-stock-image.sh',
  'make-raspios-image.sh',
  'assemble-image.sh',
  'rootfs-tree.sh',
  'dts/c2-hardkernel.dts',
  'dts/c2-mainline.dts',
];
const CACHE_DIR = join(REPO, '.cache/fixtures');
// The reference files the script copies into the images: a change to any of them is a new fixture.
const REFERENCE_FILES = [
  'odroid-c2/boot.ini',
  'odroid-c2/boot.ini.default',
  'odroid-c4/boot.ini',
  'odroid-c4/config.ini',
  ...['bookworm', 'trixie'].flatMap((suite) => ['config.txt', 'cmdline.txt.in', 'fstab.in'].map((file) => `raspberrypi/${suite}/${file}`)),
];
const SECTOR = 512;
const MAX_OUTPUT = 64 * 1024 * 1024;
const LINUX_TYPES = new Set(['83', '0FC63DAF-8483-4772-8E79-3D69D8477DE4']);

let fixtureHash: Promise<string> | undefined;
const building = new Map<string, Promise<string>>();

/**
 * The disk size of the fixtures unless a test asks for another. The stock content (a few MiB) fits
 * far smaller, and every test that hashes, copies or fscks an image pays for its size; the bench and
 * the fixture script's default keep the 1 GiB size of the measurements.
 */
export const DEFAULT_SIZE_MIB = 256;
/**
 * The smallest disk in HardKernel's layout (a 128 MiB FAT from 1 MiB) whose rootfs still takes the
 * stock content and a build: for tests whose cost is every byte of the image (--release, flashing,
 * many builds in a row).
 */
export const SMALL_SIZE_MIB = 160;
/** pi-gen's 512 MiB FAT from 8 MiB and a root that takes a build. */
export const RASPIOS_SIZE_MIB = 720;

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
    const hash = createHash('sha256').update(`${DEFAULT_SIZE_MIB} MiB`);
    for (const file of SCRIPT_FILES) hash.update(file).update(await readFile(join(SCRIPTS_DIR, file)));
    for (const file of REFERENCE_FILES) hash.update(file).update(await readFile(referencePath(file)));
    return hash.digest('hex').slice(0, 12);
  })();
  return fixtureHash;
}

const exists = (path: string) =>
  access(path).then(
    () => true,
    () => false,
  );

/**
 * The path of a cached fixture image, built on first use. Tests must not write to it:
 * use copyOfStockImage for that.
 */
export function stockImage(variant: FixtureVariant = 'stock', options: FixtureOptions = {}): Promise<string> {
  const defaultSize = variant.startsWith(RASPIOS) ? RASPIOS_SIZE_MIB : DEFAULT_SIZE_MIB;
  const sizeMiB = options.sizeMiB ?? defaultSize;
  const env: Record<string, string> = { DISK_SIZE_MIB: String(sizeMiB) };
  if (options.network) env.NETWORK_STACK = options.network;
  if (options.deviceTree) env.DEVICE_TREE = options.deviceTree;
  if (options.mergedUsr) env.MERGED_USR = '1';
  // The defaults keep the plain name: <variant>-<hash>.img; others add <size>m, the stack, the tree, usrmerge.
  const name = [
    variant,
    sizeMiB === defaultSize ? undefined : `${sizeMiB}m`,
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
    const [script, argument] = variant.startsWith(RASPIOS) ? [RASPIOS_SCRIPT, variant.slice(RASPIOS.length)] : [SCRIPT, variant];
    await execFile('bash', [script, partial, argument], {
      env: { ...process.env, REFERENCE_DIR: referenceDir(), ...env },
      maxBuffer: MAX_OUTPUT,
    });
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
  const missing = Object.entries(needs)
    .filter(([, here]) => !here)
    .map(([what]) => what);
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

export async function partitionOffset(img: string, wanted: (p: FixturePartition) => boolean, what: string): Promise<number> {
  const partition = (await partitionOffsets(img)).partitions.find(wanted);
  if (!partition) throw new Error(`${img} has no ${what} partition`);
  return partition.offset;
}

// libext2fs (debugfs, dumpe2fs, e2fsck) opens "file?offset=N" as the file system at byte N
// of the file, so the tools read the rootfs in place without a loop device.
export async function rootfsSpec(img: string): Promise<string> {
  return `${img}?offset=${await partitionOffset(img, (p) => LINUX_TYPES.has(p.type.toUpperCase()), 'Linux')}`;
}

/** Where the boot partition (partition 1) starts. */
export const bootOffset = (img: string) => partitionOffset(img, (p) => p.number === 1, 'boot');

/** Every path under `dir` with its mode, owner and type, sorted: what diff -r does not compare. */
export async function treeListing(dir: string): Promise<string[]> {
  const { stdout } = await execFile('find', ['.', '-printf', '%p %m %U:%G %y\n'], { cwd: dir, maxBuffer: MAX_OUTPUT });
  return stdout.split('\n').sort();
}
