import { mkdir, readFile, rename, rm, stat } from 'node:fs/promises';
import { basename, join, resolve } from 'node:path';
import { hashFile } from '../checksum.js';
import { compressionOf, decompressedName, decompressFile } from './decompress.js';
import { downloadFile, fetchMd5 } from './download.js';
import { UserError } from '../errors.js';
import { writeFile } from '../files.js';
import { info } from '../log.js';

export interface SourceOptions {
  /** A local .img / .img.xz / .img.gz / .img.zst, or an http(s) URL; default: the pinned stock image. */
  input?: string;
  /** The download and decompression cache, the repo's image/ dir; it also holds stock.json and stock.lock.json. */
  cacheDir: string;
}

export interface ResolvedSource {
  /** A raw .img, never to be written. */
  path: string;
  /** What the user gave (or the stock image's URL), for the summary. */
  origin: string;
}

/** image/stock.json: the stock image the build uses when no --input is given. */
export interface StockManifest {
  url: string;
  /** The file name in the cache dir. */
  file: string;
  /** HardKernel's `<md5>  <filename>` file beside the image. */
  md5Url: string;
}

/** image/stock.lock.json: what each stock file was on its first verified download. */
type Lock = Record<string, { sha256: string; size: number }>;

export const STOCK_MANIFEST = 'stock.json';
export const STOCK_LOCK = 'stock.lock.json';

export async function resolveSource(opts: SourceOptions): Promise<ResolvedSource> {
  await mkdir(opts.cacheDir, { recursive: true });
  const { input, cacheDir } = opts;
  if (input === undefined) {
    const manifest = await readManifest(join(cacheDir, STOCK_MANIFEST));
    const file = await fetchStock(manifest, cacheDir, join(cacheDir, STOCK_LOCK));
    return { path: await rawImage(file, cacheDir), origin: manifest.url };
  }
  if (/^https?:\/\//i.test(input)) {
    return { path: await rawImage(await fetchUrl(input, cacheDir), cacheDir), origin: input };
  }
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(input)) {
    throw new UserError(`unsupported input URL: ${input} (only http:// and https:// can be downloaded)`);
  }
  return { path: await rawImage(input, cacheDir), origin: input };
}

/**
 * The pinned stock image in the cache, downloaded if missing. A download is checked against the
 * published md5sum, and every file against the lock, which the first verified download fills in.
 */
export async function fetchStock(manifest: StockManifest, cacheDir: string, lockPath: string): Promise<string> {
  const path = join(cacheDir, manifest.file);
  const lock = await readLock(lockPath);
  const locked = lock[manifest.file];
  let digests: Digests;
  if (await exists(path)) {
    // Without a lock entry a cached file (e.g. copied in by hand) must still match HardKernel's md5.
    const md5 = locked ? undefined : await requireMd5(manifest);
    digests = await verify(path, manifest.file, md5, locked).catch(async (error: unknown) => {
      await rm(path, { force: true });
      throw error;
    });
  } else {
    const md5 = await requireMd5(manifest);
    let verified: Digests | undefined;
    await downloadFile(manifest.url, path, {
      verify: async (part) => {
        verified = await verify(part, manifest.file, md5, locked);
      },
    });
    digests = verified!;
  }
  if (!locked) {
    await writeLock(lockPath, { ...lock, [manifest.file]: digests });
    info(`recorded the sha256 of ${manifest.file} in ${lockPath}`);
  }
  return path;
}

/** An arbitrary http(s) URL, downloaded into the cache once; verified if an md5sum is published beside it. */
async function fetchUrl(url: string, cacheDir: string): Promise<string> {
  const name = decodeURIComponent(basename(new URL(url).pathname));
  checkImageName(name, url);
  const path = join(cacheDir, name);
  if (await exists(path)) {
    info(`using the earlier download of ${url}: ${path}`);
    return path;
  }
  const md5 = await fetchMd5(`${url}.md5sum`);
  if (!md5) info(`${url}.md5sum is not published: the download cannot be verified`);
  await downloadFile(url, path, { verify: md5 ? (part) => verify(part, name, md5) : undefined });
  return path;
}

/** A local image as a raw .img path: as is, or decompressed once into the cache. */
async function rawImage(path: string, cacheDir: string): Promise<string> {
  checkImageName(basename(path), path);
  const stats = await stat(path).catch(() => {
    throw new UserError(`input image not found: ${path} (check the path given to --input)`);
  });
  if (!stats.isFile()) throw new UserError(`input image is not a regular file: ${path} (give an image file to --input)`);
  if (stats.size === 0) throw new UserError(`input image is empty: ${path} (re-download or re-copy it)`);
  if (!compressionOf(path)) return resolve(path);

  // The sidecar records which source the cached image came from: size and mtime are enough to see
  // a replaced or re-downloaded archive without hashing gigabytes on every build.
  const dest = join(cacheDir, decompressedName(path));
  const sidecar = `${dest}.source.json`;
  const source = { source: resolve(path), size: stats.size, mtimeMs: stats.mtimeMs };
  const recorded = await readJson(sidecar).catch(() => undefined);
  const cachedSize = await stat(dest).then((s) => s.size, () => undefined);
  if (
    recorded?.source === source.source &&
    recorded.size === source.size &&
    recorded.mtimeMs === source.mtimeMs &&
    recorded.imageSize === cachedSize
  ) {
    return dest;
  }
  await rm(sidecar, { force: true });
  await decompressFile(path, dest);
  await writeFile(sidecar, `${JSON.stringify({ ...source, imageSize: (await stat(dest)).size }, null, 2)}\n`);
  return dest;
}

function checkImageName(name: string, given: string): void {
  if (!compressionOf(name) && !name.endsWith('.img')) {
    throw new UserError(`unsupported input ${given}: expected a .img, .img.xz, .img.gz or .img.zst`);
  }
}

type Digests = { sha256: string; size: number };

/** Checks a file against an md5 and/or a lock entry; a mismatch names both values. */
async function verify(
  path: string,
  name: string,
  md5: string | undefined,
  locked?: Digests,
): Promise<Digests> {
  const size = (await stat(path)).size;
  const hashes = await hashFile(path, ['md5', 'sha256']);
  const mismatch = (expected: string, got: string) =>
    new UserError(`checksum mismatch for ${name}: expected ${expected}, got ${got}; it was deleted, run again to download it afresh`);
  if (md5 && hashes.md5 !== md5) throw mismatch(`md5 ${md5}`, `md5 ${hashes.md5}`);
  if (locked && (hashes.sha256 !== locked.sha256 || size !== locked.size)) {
    throw mismatch(`sha256 ${locked.sha256} (${locked.size} bytes)`, `sha256 ${hashes.sha256} (${size} bytes)`);
  }
  return { sha256: hashes.sha256, size };
}

async function requireMd5(manifest: StockManifest): Promise<string> {
  const md5 = await fetchMd5(manifest.md5Url);
  if (!md5) {
    throw new UserError(
      `cannot verify the stock image: ${manifest.md5Url} is not available; pass a local image with --input PATH`,
    );
  }
  return md5;
}

async function readManifest(path: string): Promise<StockManifest> {
  const json = await readJson(path).catch((error: unknown) => {
    throw new UserError(`cannot read the stock image manifest ${path}: ${(error as Error).message}; restore it from git, or pass --input PATH`);
  });
  const valid =
    typeof json?.url === 'string' &&
    typeof json.md5Url === 'string' &&
    typeof json.file === 'string' &&
    json.file === basename(json.file);
  if (!valid) {
    throw new UserError(`${path} must have string keys url, file (a plain file name) and md5Url; restore it from git`);
  }
  return { url: json.url, file: json.file, md5Url: json.md5Url };
}

async function readLock(path: string): Promise<Lock> {
  if (!(await exists(path))) return {};
  return (await readJson(path).catch((error: unknown) => {
    throw new UserError(`cannot read ${path}: ${(error as Error).message}; restore it from git`);
  })) as Lock;
}

async function writeLock(path: string, lock: Lock): Promise<void> {
  const temp = `${path}.tmp`;
  await writeFile(temp, `${JSON.stringify(lock, null, 2)}\n`);
  await rename(temp, path);
}

async function readJson(path: string): Promise<any> {
  return JSON.parse(await readFile(path, 'utf8'));
}

async function exists(path: string): Promise<boolean> {
  return stat(path).then(() => true, () => false);
}
