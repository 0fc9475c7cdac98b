/**
 * Docker's static bundle (docker-<version>.tgz): where it comes from (a path, a URL, or the
 * pinned default in image/docker.json), its verification, and its files as a stream of
 * entries for the applier, read straight from the .tgz without unpacking it anywhere.
 */
import { createReadStream } from 'node:fs';
import { mkdir, stat } from 'node:fs/promises';
import { basename, join, resolve } from 'node:path';
import { PassThrough } from 'node:stream';
import { createGunzip } from 'node:zlib';
import tar, { type Header } from 'tar-stream';
import { hashFile } from '../checksum.js';
import type { BuildConfig } from '../config/schema.js';
import type { StreamEntry } from '../engine/operations.js';
import { UserError } from '../errors.js';
import { exists } from '../files.js';
import { warn } from '../log.js';
import { fetchPinned, readManifest } from './pinned.js';

/** image/docker.json: the bundle a build uses when docker.bundle is unset. */
export const BUNDLE_MANIFEST = 'docker.json';
/** image/docker.lock.json: the sha256 of each downloaded bundle, recorded on first download. */
export const BUNDLE_LOCK = 'docker.lock.json';
export const BUNDLE_URL_PATTERN = 'https://download.docker.com/linux/static/stable/aarch64/docker-<version>.tgz';

/** Without these the units cannot start; the rest of the bundle (docker, ctr, ...) is optional. */
export const REQUIRED_BINARIES = ['dockerd', 'containerd', 'containerd-shim-runc-v2', 'runc'];

export interface BundleManifest {
  url: string;
  /** The file name in the cache dir. */
  file: string;
  /** Optional: without it the first download is recorded in the lock and pinned from then on. */
  sha256?: string;
}

export interface DockerBundle {
  /** A local .tgz, verified. */
  path: string;
  sha256: string;
  /** What the user gave, or the manifest's URL, for messages. */
  origin: string;
}

/** The bundle the config asks for, downloaded into `cacheDir` if it is a URL, and verified. */
export async function resolveBundle(docker: BuildConfig['docker'], cacheDir: string): Promise<DockerBundle> {
  if (docker.bundle === undefined) {
    const manifest = await readBundleManifest(join(cacheDir, BUNDLE_MANIFEST));
    return fetchBundle(manifest.url, manifest.file, manifest.sha256, cacheDir);
  }
  if (/^https?:\/\//i.test(docker.bundle)) {
    const file = decodeURIComponent(basename(new URL(docker.bundle).pathname));
    if (!file.endsWith('.tgz') && !file.endsWith('.tar.gz')) {
      throw new UserError(
        `docker.bundle ${docker.bundle} does not name a .tgz; give the URL of docker-<version>.tgz (${BUNDLE_URL_PATTERN})`,
      );
    }
    return fetchBundle(docker.bundle, file, docker.sha256, cacheDir);
  }
  return localBundle(docker.bundle, docker.sha256);
}

async function localBundle(given: string, sha256: string | undefined): Promise<DockerBundle> {
  const path = resolve(given);
  const stats = await stat(path).catch(() => undefined);
  if (!stats?.isFile()) {
    throw new UserError(
      `docker.bundle ${given} is not a file; give the path of docker-<version>.tgz for aarch64, or its URL (${BUNDLE_URL_PATTERN})`,
    );
  }
  const got = (await hashFile(path, ['sha256'])).sha256;
  if (sha256 !== undefined && got !== sha256) {
    throw new UserError(`docker.bundle ${given} has sha256 ${got}, but docker.sha256 is ${sha256}; check which of the two is wrong`);
  }
  return { path, sha256: got, origin: given };
}

/**
 * A URL's bundle in the cache, downloaded once. It is checked against `sha256` when given,
 * else against the lock, which its first download fills in.
 */
async function fetchBundle(url: string, file: string, sha256: string | undefined, cacheDir: string): Promise<DockerBundle> {
  await mkdir(cacheDir, { recursive: true });
  const fetched = await fetchPinned({
    url,
    file,
    cacheDir,
    lockPath: join(cacheDir, BUNDLE_LOCK),
    sha256:
      sha256 === undefined
        ? undefined
        : { algorithm: 'sha256', value: sha256, source: 'docker.sha256', fix: 'check docker.sha256 and docker.bundle, then run again' },
    downloadHint: bundleHint,
  });
  return { path: fetched.path, sha256: fetched.sha256!, origin: url };
}

/** download.ts advises --input, which is about the stock image: point at docker.bundle instead. */
function bundleHint(error: unknown): unknown {
  if (!(error instanceof UserError)) return error;
  return new UserError(
    error.message.replace(/, or pass a local image with --input PATH$/, ', or set docker.bundle to a local copy of the .tgz'),
  );
}

async function readBundleManifest(path: string): Promise<BundleManifest> {
  const fix = `set docker.bundle to the URL or path of Docker's static bundle (${BUNDLE_URL_PATTERN}), or restore the manifest from git`;
  if (!(await exists(path))) throw new UserError(`docker.bundle is not set and the default bundle manifest ${path} is missing; ${fix}`);
  const json = await readManifest(path, fix);
  if (json.sha256 !== undefined && !(typeof json.sha256 === 'string' && /^[0-9a-f]{64}$/.test(json.sha256))) {
    throw new UserError(`${path} has a sha256 that is not 64 hex digits; ${fix}`);
  }
  return { url: json.url, file: json.file, sha256: json.sha256 as string | undefined };
}

// --- the archive ----------------------------------------------------------------------------

/** What becomes of one tar entry: a binary to install, or why it is left out. */
export type EntryFate = { install: string } | { skip: string } | { ignore: true };

/**
 * A name a binary may have in /usr/local/bin: no leading `-` (read as an option by whatever lists
 * or removes it), no leading `.` (hidden, or `..`), nothing a shell or a terminal treats specially.
 */
const BINARY_NAME = /^[A-Za-z0-9][A-Za-z0-9._+-]*$/;

export const isBinaryName = (name: string) => BINARY_NAME.test(name);

/** An entry's name for a warning: as it is when printable, else JSON-quoted so it stays one line. */
const shownName = (name: string) => (/^[\x21-\x7e]+$/.test(name) ? name : JSON.stringify(name));

/**
 * Only regular files directly under docker/ are installed, under their own name, and only names
 * of BINARY_NAME's grammar. Everything else, including any path that would climb out with "..",
 * is left out deliberately.
 */
export function entryFate(header: Pick<Header, 'name'> & Partial<Header>): EntryFate {
  const name = header.name.replace(/^(\.\/)+/, '');
  if (name === 'docker/' || name === 'docker') return { ignore: true };
  if (!name.startsWith('docker/')) return { skip: 'not under docker/' };
  const rest = name.slice('docker/'.length).replace(/\/+$/, '');
  const type = header.type ?? 'file';
  if (type !== 'file' && type !== 'contiguous-file') return { skip: `a ${type}, not a regular file` };
  if (rest.includes('/') || rest === '..' || rest === '.' || rest === '') return { skip: 'not a plain file name directly under docker/' };
  if (!isBinaryName(rest)) return { skip: 'not a plain binary name (letters, digits and . _ + -, not starting with - or .)' };
  return { install: rest };
}

type TarEntry = tar.Extract extends AsyncIterable<infer E> ? E : never;

/** An entry's data; tar-stream's types leave the chunks of its streamx Readable untyped, they are Buffers. */
const body = (entry: TarEntry) => entry as unknown as AsyncIterable<Buffer>;

/** The entries of a .tgz in order; each entry's body must be read or resumed before the next. */
async function* tarEntries(path: string): AsyncGenerator<TarEntry> {
  // Large pieces: at zlib's default 16 KiB its callbacks alone took a second for a 200 MiB bundle.
  const file = createReadStream(path, { highWaterMark: 1024 * 1024 });
  const gunzip = createGunzip({ chunkSize: 1024 * 1024 });
  // And up to 16 MiB inflated ahead, on libuv's thread pool, while the file system writes the last
  // pieces: without it the writer waited for gunzip about a third of the time.
  const ahead = new PassThrough({ readableHighWaterMark: 16 * 1024 * 1024 });
  const extract = tar.extract();
  const fail = (error: Error) => extract.destroy(error);
  file.on('error', fail);
  gunzip.on('error', fail);
  file.pipe(gunzip).pipe(ahead).pipe(extract);
  try {
    yield* extract;
  } finally {
    file.destroy();
    gunzip.destroy();
    ahead.destroy();
    extract.destroy();
  }
}

const EM_AARCH64 = 183;
const MACHINES: Record<number, string> = { 3: 'x86 (32-bit)', 40: 'arm (32-bit)', 62: 'x86-64', [EM_AARCH64]: 'aarch64' };

/** The ELF machine of a file's first bytes, or undefined for a file that is not ELF. */
function elfMachine(head: Buffer): number | undefined {
  if (head.length < 20 || head.readUInt32BE(0) !== 0x7f454c46) return undefined;
  return head[5] === 2 ? head.readUInt16BE(18) : head.readUInt16LE(18);
}

/**
 * The binaries a bundle installs, checked before anything is written: it must be a readable
 * .tgz, hold the required binaries, and be built for aarch64. Left-out entries are reported.
 */
export async function listBundle(bundle: DockerBundle): Promise<{ binaries: string[]; bytes: number }> {
  const binaries: string[] = [];
  let bytes = 0;
  try {
    for await (const entry of tarEntries(bundle.path)) {
      const fate = entryFate(entry.header);
      if ('skip' in fate) warn(`docker bundle: leaving out ${shownName(entry.header.name)}: ${fate.skip}`);
      if (!('install' in fate)) {
        entry.resume();
        continue;
      }
      const chunks: Buffer[] = [];
      let length = 0;
      for await (const chunk of body(entry)) {
        if (length < 20) chunks.push(chunk);
        length += chunk.length;
      }
      const machine = elfMachine(Buffer.concat(chunks));
      if (machine !== undefined && machine !== EM_AARCH64) {
        const arch = MACHINES[machine] ?? `ELF machine ${machine}`;
        throw new UserError(
          `docker.bundle ${bundle.origin} holds ${arch} binaries (${entry.header.name}), the ODROID-C2 needs aarch64: use ${BUNDLE_URL_PATTERN}`,
        );
      }
      if (!binaries.includes(fate.install)) binaries.push(fate.install);
      bytes += length;
    }
  } catch (error) {
    if (error instanceof UserError) throw error;
    throw new UserError(
      `docker.bundle ${bundle.origin} is not a readable .tgz (${(error as Error).message}); give Docker's static docker-<version>.tgz for aarch64`,
    );
  }
  const missing = REQUIRED_BINARIES.filter((name) => !binaries.includes(name));
  if (missing.length > 0) {
    throw new UserError(
      `docker.bundle ${bundle.origin} has no ${missing.map((name) => `docker/${name}`).join(', ')}; give Docker's static docker-<version>.tgz (${BUNDLE_URL_PATTERN})`,
    );
  }
  return { binaries, bytes };
}

/** The bundle's binaries as stream entries (root:root 0755), decompressed as the applier writes them. */
export async function* bundleEntries(bundle: DockerBundle): AsyncGenerator<StreamEntry> {
  for await (const entry of tarEntries(bundle.path)) {
    const fate = entryFate(entry.header);
    if ('install' in fate) {
      yield { type: 'file', path: fate.install, data: body(entry), mode: 0o755, uid: 0, gid: 0 };
    } else {
      entry.resume();
    }
  }
}
