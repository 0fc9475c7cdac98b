/**
 * The one way a pinned input (the stock image, Docker's bundle) gets into the cache: its manifest
 * names a URL and a file, the cache keeps the file, a download is verified before it is renamed
 * into place, and a lock file records the sha256 and size of every first verified download, so
 * a source without a published checksum is pinned once it has been seen (and the lock committed).
 */
import { rename, rm, stat } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { hashFile } from '../checksum.js';
import { UserError } from '../errors.js';
import { exists, readJson, writeFile } from '../files.js';
import { info } from '../log.js';
import { downloadFile } from './download.js';

/** What one file in the cache was on its first verified download. */
export interface Digests {
  sha256: string;
  size: number;
}
type Lock = Record<string, Digests>;

/** A digest the file must have, where it comes from (for the message) and what to do on a mismatch. */
export interface Expected {
  algorithm: 'md5' | 'sha256';
  value: string;
  size?: number;
  source: string;
  fix: string;
}

export interface PinnedFile {
  url: string;
  /** The file name in the cache directory. */
  file: string;
  cacheDir: string;
  /** The lock that pins every first verified download; without one nothing is recorded. */
  lockPath?: string;
  /** A digest given outright (docker.sha256, a manifest's sha256): it wins over the lock. */
  sha256?: Expected;
  /** A published digest (HardKernel's .md5sum), asked for when nothing else pins the file. */
  published?: () => Promise<Expected | undefined>;
  /** Refuse a file that nothing pins: no given digest, no lock entry, nothing published. */
  requirePin?: (url: string) => UserError;
  /** Rewrites a download error for this artifact's user (e.g. which setting to change). */
  downloadHint?: (error: unknown) => unknown;
}

export interface FetchedFile {
  path: string;
  /** Unknown only for a cached file that nothing pins and no lock records: it is not read again. */
  sha256?: string;
}

/** The manifest `<cacheDir>/<name>`: a JSON object with a string url and a plain file name, plus `extra` keys. */
export async function readManifest(path: string, fix: string): Promise<Record<string, unknown> & { url: string; file: string }> {
  const json = (await readJson(path, fix)) as Record<string, unknown> | null;
  if (typeof json?.url !== 'string' || typeof json.file !== 'string' || json.file !== basename(json.file)) {
    throw new UserError(`${path} must have string keys url and file (a plain file name); ${fix}`);
  }
  return json as Record<string, unknown> & { url: string; file: string };
}

/** Checks a file against each expected digest; a mismatch deletes nothing here but names both values. */
async function verify(path: string, file: string, expected: Expected[]): Promise<Digests> {
  const size = (await stat(path)).size;
  const hashes = await hashFile(path, ['md5', 'sha256']);
  for (const want of expected) {
    const got = hashes[want.algorithm];
    if (got !== want.value || (want.size !== undefined && size !== want.size)) {
      const sized = (digest: string, bytes?: number) => `${want.algorithm} ${digest}${want.size === undefined ? '' : ` (${bytes} bytes)`}`;
      throw new UserError(
        `checksum mismatch for ${file}: ${want.source} expects ${sized(want.value, want.size)}, got ${sized(got, size)}; it was deleted: ${want.fix}`,
      );
    }
  }
  return { sha256: hashes.sha256, size };
}

/**
 * The pinned file in the cache, downloaded if missing. It is checked against the given sha256,
 * else the lock's entry, else the published digest; a file that fails is deleted. The first
 * verified download of a file the lock does not know is recorded in the lock.
 */
export async function fetchPinned(pin: PinnedFile): Promise<FetchedFile> {
  const path = join(pin.cacheDir, pin.file);
  const lock = pin.lockPath === undefined ? {} : ((await readJson(pin.lockPath, 'restore it from git', {})) as Lock);
  const locked = lock[pin.file];
  const fromLock: Expected | undefined = locked && {
    algorithm: 'sha256',
    value: locked.sha256,
    size: locked.size,
    source: pin.lockPath!,
    fix: `run again to download it afresh, or if the file really changed, remove its entry from ${pin.lockPath}`,
  };
  const pinned = pin.sha256 ?? fromLock;
  const expected = async (): Promise<Expected[]> => {
    if (pinned) return [pinned];
    const published = await pin.published?.();
    if (published) return [published];
    if (pin.requirePin) throw pin.requirePin(pin.url);
    return [];
  };
  const records = pin.lockPath !== undefined && !pin.sha256 && !locked;
  let digests: Digests;
  if (await exists(path)) {
    const wanted = await expected();
    if (wanted.length === 0 && !records) {
      info(`using the earlier download of ${pin.url}: ${path}`);
      return { path };
    }
    digests = await verify(path, pin.file, wanted).catch(async (error: unknown) => {
      await rm(path, { force: true });
      throw error;
    });
  } else {
    const wanted = await expected();
    let verified: Digests | undefined;
    await downloadFile(pin.url, path, {
      verify: async (part) => {
        verified = await verify(part, pin.file, wanted);
      },
    }).catch((error: unknown) => {
      throw pin.downloadHint ? pin.downloadHint(error) : error;
    });
    digests = verified!;
  }
  if (records) {
    await writeLock(pin.lockPath!, { ...lock, [pin.file]: digests });
    info(`recorded the sha256 of ${pin.file} in ${pin.lockPath}: commit it to pin the file`);
  }
  return { path, sha256: digests.sha256 };
}

/** Replaces the lock atomically, so an interrupted build never leaves half a file. */
async function writeLock(path: string, lock: Lock): Promise<void> {
  const temp = `${path}.tmp`;
  await writeFile(temp, `${JSON.stringify(lock, null, 2)}\n`);
  await rename(temp, path);
}
