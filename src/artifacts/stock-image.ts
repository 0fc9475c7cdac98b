import { mkdir, rm, stat } from 'node:fs/promises';
import { basename, join, resolve } from 'node:path';
import { UserError } from '../errors.js';
import { exists, readJson, writeFile } from '../files.js';
import { info } from '../log.js';
import { compressionOf, decompressedName, decompressFile } from './decompress.js';
import { fetchMd5 } from './download.js';
import { type Expected, fetchPinned, readManifest } from './pinned.js';

export interface SourceOptions {
  /** A local .img / .img.xz / .img.gz / .img.zst, or an http(s) URL; default: the pinned stock image. */
  input?: string;
  /** The download and decompression cache, the repo's image/ dir; it also holds stock.json and stock.lock.json. */
  cacheDir: string;
}

/** For --dry-run, which writes nothing: what a build would first download or decompress. */
export interface UnavailableSource {
  wouldFirst: string;
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

export const STOCK_MANIFEST = 'stock.json';
export const STOCK_LOCK = 'stock.lock.json';

/**
 * For --dry-run: the raw image when it is at hand (a local .img, or a download or decompression
 * already in the cache), else what a build would first download or decompress. Writes nothing,
 * not even the cache directory, and does not verify a cached download (which records its lock).
 */
export async function availableSource(opts: SourceOptions): Promise<ResolvedSource | UnavailableSource> {
  const { input, cacheDir } = opts;
  const atHand = async (path: string, origin: string): Promise<ResolvedSource | UnavailableSource> => {
    const raw = await cachedRawImage(path, cacheDir);
    return raw.path === undefined ? { wouldFirst: raw.wouldFirst } : { path: raw.path, origin };
  };
  const downloaded = async (file: string, url: string) => {
    const path = join(cacheDir, file);
    return (await exists(path)) ? atHand(path, url) : { wouldFirst: `download ${url} into ${path}` };
  };
  if (input === undefined) {
    const manifest = await readStockManifest(join(cacheDir, STOCK_MANIFEST));
    return downloaded(manifest.file, manifest.url);
  }
  if (/^https?:\/\//i.test(input)) return downloaded(imageNameOf(input), input);
  refuseOtherUrl(input);
  return atHand(input, input);
}

export async function resolveSource(opts: SourceOptions): Promise<ResolvedSource> {
  await mkdir(opts.cacheDir, { recursive: true });
  const { input, cacheDir } = opts;
  if (input === undefined) {
    const manifest = await readStockManifest(join(cacheDir, STOCK_MANIFEST));
    const file = await fetchStock(manifest, cacheDir, join(cacheDir, STOCK_LOCK));
    return { path: await rawImage(file, cacheDir), origin: manifest.url };
  }
  if (/^https?:\/\//i.test(input)) {
    return { path: await rawImage(await fetchUrl(input, cacheDir), cacheDir), origin: input };
  }
  refuseOtherUrl(input);
  return { path: await rawImage(input, cacheDir), origin: input };
}

function refuseOtherUrl(input: string): void {
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(input)) {
    throw new UserError(`unsupported input URL: ${input} (only http:// and https:// can be downloaded)`);
  }
}

/** HardKernel's `<md5>  <filename>` file, as the digest a download must have; undefined when not published. */
async function publishedMd5(md5Url: string): Promise<Expected | undefined> {
  const value = await fetchMd5(md5Url);
  return value === undefined ? undefined : { algorithm: 'md5', value, source: md5Url, fix: 'run again to download it afresh' };
}

/**
 * The pinned stock image in the cache, downloaded if missing. A file the lock does not pin yet is
 * checked against the published md5sum, and its first verified download fills in the lock.
 */
export async function fetchStock(manifest: StockManifest, cacheDir: string, lockPath: string): Promise<string> {
  const fetched = await fetchPinned({
    url: manifest.url,
    file: manifest.file,
    cacheDir,
    lockPath,
    published: () => publishedMd5(manifest.md5Url),
    requirePin: () =>
      new UserError(`cannot verify the stock image: ${manifest.md5Url} is not available; pass a local image with --input PATH`),
  });
  return fetched.path;
}

/** An arbitrary http(s) URL, downloaded into the cache once; verified if an md5sum is published beside it. */
async function fetchUrl(url: string, cacheDir: string): Promise<string> {
  const name = imageNameOf(url);
  const published = async () => {
    const md5 = await publishedMd5(`${url}.md5sum`);
    if (!md5) info(`${url}.md5sum is not published: the download cannot be verified`);
    return md5;
  };
  return (await fetchPinned({ url, file: name, cacheDir, published })).path;
}

/** The image file name a URL names, checked. */
function imageNameOf(url: string): string {
  const name = decodeURIComponent(basename(new URL(url).pathname));
  checkImageName(name, url);
  return name;
}

/** One line for an input that is not an image file; its size and mtime. */
async function checkInput(path: string): Promise<{ size: number; mtimeMs: number }> {
  checkImageName(basename(path), path);
  const stats = await stat(path).catch(() => {
    throw new UserError(`input image not found: ${path} (check the path given to --input)`);
  });
  if (!stats.isFile()) throw new UserError(`input image is not a regular file: ${path} (give an image file to --input)`);
  if (stats.size === 0) throw new UserError(`input image is empty: ${path} (re-download or re-copy it)`);
  return stats;
}

/**
 * A local image as a raw .img path without writing: as is, or its decompression in the cache
 * when that is current; else where the decompression would go, and its sidecar's contents.
 */
async function cachedRawImage(
  path: string,
  cacheDir: string,
): Promise<{ path: string; wouldFirst?: undefined } | { path?: undefined; wouldFirst: string; dest: string; source: object }> {
  const stats = await checkInput(path);
  if (!compressionOf(path)) return { path: resolve(path) };
  // The sidecar records which source the cached image came from: size and mtime are enough to see
  // a replaced or re-downloaded archive without hashing gigabytes on every build.
  const dest = join(cacheDir, decompressedName(path));
  const source = { source: resolve(path), size: stats.size, mtimeMs: stats.mtimeMs };
  const recorded = (await readJson(`${dest}.source.json`, 'it is remade').catch(() => undefined)) as Record<string, unknown> | undefined;
  const cachedSize = await stat(dest).then(
    (s) => s.size,
    () => undefined,
  );
  if (
    recorded?.source === source.source &&
    recorded.size === source.size &&
    recorded.mtimeMs === source.mtimeMs &&
    recorded.imageSize === cachedSize
  ) {
    return { path: dest };
  }
  return { wouldFirst: `decompress ${path} into ${dest}`, dest, source };
}

/** A local image as a raw .img path: as is, or decompressed once into the cache. */
async function rawImage(path: string, cacheDir: string): Promise<string> {
  const cached = await cachedRawImage(path, cacheDir);
  if (cached.path !== undefined) return cached.path;
  const { dest, source } = cached;
  const sidecar = `${dest}.source.json`;
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

async function readStockManifest(path: string): Promise<StockManifest> {
  const json = await readManifest(path, 'restore it from git, or pass --input PATH');
  if (typeof json.md5Url !== 'string')
    throw new UserError(`${path} must have a string key md5Url; restore it from git, or pass --input PATH`);
  return { url: json.url, file: json.file, md5Url: json.md5Url };
}
