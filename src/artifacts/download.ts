import { open, rename, rm, stat } from 'node:fs/promises';
import { basename } from 'node:path';
import type { Readable } from 'node:stream';
import fetch, { type Response } from 'node-fetch';
import { refusedWrite, UserError, withPath } from '../errors.js';
import { progressBar, warn } from '../log.js';

export interface DownloadOptions {
  /** Checks the complete file before it is moved into place; if it throws, the file is deleted. */
  verify?: (path: string) => Promise<unknown>;
  /** Give up when the server sends nothing for this long (a dead connection never errors by itself). */
  idleTimeoutMs?: number;
}

const DEFAULT_IDLE_TIMEOUT_MS = 60_000;
const MiB = 1024 * 1024;

/** Thrown instead of downloading once refuseDownloads() was called: `--dry-run` writes nothing. */
export class DownloadRefused extends Error {
  constructor(
    readonly url: string,
    readonly dest: string,
  ) {
    super(`download of ${url} refused`);
  }
}

let downloadsRefused = false;

/** From now on, every download throws DownloadRefused (naming what it would have fetched) instead of writing. */
export function refuseDownloads(): void {
  downloadsRefused = true;
}

/**
 * Downloads `url` to `dest` through `dest.part`, which survives a failure so the next call resumes
 * it with a Range request (or starts over if the server ignores Range).
 */
export async function downloadFile(url: string, dest: string, options: DownloadOptions = {}): Promise<void> {
  if (downloadsRefused) throw new DownloadRefused(url, dest);
  const part = `${dest}.part`;
  const idle = idleTimer(options.idleTimeoutMs ?? DEFAULT_IDLE_TIMEOUT_MS);
  try {
    let offset = await sizeOf(part);
    let response = await request(url, idle, offset > 0 ? { Range: `bytes=${offset}-` } : {});
    let total: number | undefined = offset;
    // 416 with our own size: an earlier run got every byte but stopped before moving the file into place.
    const alreadyComplete = offset > 0 && response.status === 416 && rangeTotal(response) === offset;
    if (!alreadyComplete) {
      if (offset > 0 && response.status === 200) {
        offset = 0; // the server ignored Range and is sending the whole file
      } else if (offset > 0 && !(response.status === 206 && rangeStart(response) === offset)) {
        discard(response);
        offset = 0;
        response = await request(url, idle, {});
      }
      if (!response.ok) throw httpError(url, response);
      const length = Number(response.headers.get('content-length') ?? NaN);
      total = Number.isFinite(length) ? offset + length : undefined;
      await receive(url, response, part, offset, total, idle);
    }
    const received = await sizeOf(part);
    if (total !== undefined && received !== total) {
      throw new UserError(
        `cannot download ${url}: the server sent ${received} of ${total} bytes; run again to resume, or pass a local image with --input PATH`,
      );
    }
    if (options.verify) {
      await options.verify(part).catch(async (error: unknown) => {
        await rm(part, { force: true });
        throw error;
      });
    }
    await rename(part, dest);
  } finally {
    idle.stop();
  }
}

/**
 * The md5 from a `<md5>  <filename>` file published beside a download, or undefined if there is
 * none (404/410) or the answer is not such a file.
 */
export async function fetchMd5(url: string, idleTimeoutMs = DEFAULT_IDLE_TIMEOUT_MS): Promise<string | undefined> {
  const idle = idleTimer(idleTimeoutMs);
  try {
    const response = await request(url, idle, {});
    if (response.status === 404 || response.status === 410) {
      discard(response);
      return undefined;
    }
    if (!response.ok) throw httpError(url, response);
    const text = await response.text().catch((error: unknown) => {
      throw networkError(url, error, idle);
    });
    const md5 = /^\s*([0-9a-f]{32})(\s|$)/i.exec(text)?.[1];
    if (!md5) warn(`ignoring ${url}: it is not an md5sum file`);
    return md5?.toLowerCase();
  } finally {
    idle.stop();
  }
}

async function receive(
  url: string,
  response: Response,
  part: string,
  offset: number,
  total: number | undefined,
  idle: IdleTimer,
): Promise<void> {
  const bar = progressBar(`downloading ${basename(url)}`, total);
  bar.advance(offset);
  let received = offset;
  // Chunk by chunk rather than through a pipeline: a pipeline that fails destroys the file stream
  // with writes still queued, and those bytes would have to be downloaded again.
  const file = await open(part, offset > 0 ? 'a' : 'w');
  try {
    for await (const chunk of response.body as AsyncIterable<Buffer>) {
      idle.touch();
      await file.writeFile(chunk);
      received += chunk.length;
      bar.advance(chunk.length);
    }
  } catch (error) {
    // A full disk is not the network's: it is told as the file that could not be written.
    if (refusedWrite(error)) throw withPath(error, part);
    const reason = `${describe(error, idle)} after ${(received / MiB).toFixed(1)} MiB`;
    throw new UserError(`cannot download ${url}: ${reason}; run again to resume, or pass a local image with --input PATH`);
  } finally {
    await file.close();
  }
  bar.finish();
}

type IdleTimer = ReturnType<typeof idleTimer>;

function idleTimer(ms: number) {
  const controller = new AbortController();
  let timer: NodeJS.Timeout | undefined;
  const touch = () => {
    clearTimeout(timer);
    timer = setTimeout(() => controller.abort(), ms);
  };
  touch();
  return { signal: controller.signal, touch, stop: () => clearTimeout(timer), seconds: ms / 1000 };
}

async function request(url: string, idle: IdleTimer, headers: Record<string, string>): Promise<Response> {
  try {
    // node-fetch would otherwise ask for gzip and inflate transparently: the Range offsets and the
    // checksums are about the bytes of the file, and a .gz must stay compressed.
    const response = await fetch(url, {
      headers: { ...headers, 'Accept-Encoding': 'identity' },
      compress: false,
      signal: idle.signal,
    });
    idle.touch();
    return response;
  } catch (error) {
    throw networkError(url, error, idle);
  }
}

function networkError(url: string, error: unknown, idle: IdleTimer): UserError {
  return new UserError(`cannot download ${url}: ${describe(error, idle)}; check the network, or pass a local image with --input PATH`);
}

function httpError(url: string, response: Response): UserError {
  discard(response);
  return new UserError(
    `cannot download ${url}: HTTP ${response.status} ${response.statusText}; check the URL, or pass a local image with --input PATH`,
  );
}

/** Drops an unwanted answer without reading what may be a whole image. */
function discard(response: Response): void {
  (response.body as Readable | null)?.destroy();
}

function describe(error: unknown, idle: IdleTimer): string {
  const { code, name, message } = error as NodeJS.ErrnoException;
  if (name === 'AbortError') return `no data received for ${idle.seconds} s`;
  if (code === 'ENOTFOUND' || code === 'EAI_AGAIN') return 'cannot resolve the host name (no network or no DNS?)';
  if (code === 'ECONNREFUSED') return 'connection refused (is the server up, is there a network?)';
  if (code === 'ECONNRESET' || code === 'ERR_STREAM_PREMATURE_CLOSE') return 'the connection was closed';
  return message;
}

/** The first byte of a 206 answer, from `Content-Range: bytes START-END/TOTAL`. */
function rangeStart(response: Response): number | undefined {
  const match = /^bytes (\d+)-/.exec(response.headers.get('content-range') ?? '');
  return match ? Number(match[1]) : undefined;
}

// The full size from a 416 answer's `Content-Range: bytes */TOTAL`.
function rangeTotal(response: Response): number | undefined {
  const match = /\/(\d+)$/.exec(response.headers.get('content-range') ?? '');
  return match ? Number(match[1]) : undefined;
}

async function sizeOf(path: string): Promise<number> {
  return stat(path).then(
    (stats) => stats.size,
    () => 0,
  );
}
