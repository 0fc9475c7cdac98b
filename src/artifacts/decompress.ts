import { spawn } from 'node:child_process';
import { createReadStream } from 'node:fs';
import { rename, rm, stat } from 'node:fs/promises';
import { basename } from 'node:path';
import { Duplex, Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createGunzip } from 'node:zlib';
import { refusedWrite, UserError } from '../errors.js';
import { createSparseWriteStream } from '../image/sparse.js';
import { progressBar } from '../log.js';

export type Compression = 'xz' | 'gz' | 'zst';

const SUFFIXES: Record<Compression, string> = { xz: '.xz', gz: '.gz', zst: '.zst' };

/**
 * xz and zstd run as system tools: their C decoders beat any JS port. `-T0` lets xz 5.4+ decode
 * multi-block archives on every core; older xz ignores it when decompressing.
 */
const TOOLS = {
  xz: { command: 'xz', args: ['-dc', '-T0'], debianPackage: 'xz-utils' },
  zst: { command: 'zstd', args: ['-dc'], debianPackage: 'zstd' },
} as const;

export function compressionOf(path: string): Compression | undefined {
  return (Object.keys(SUFFIXES) as Compression[]).find((kind) => path.endsWith(SUFFIXES[kind]));
}

/** `foo.img.xz` -> `foo.img`. */
export function decompressedName(path: string): string {
  const kind = compressionOf(path);
  const name = basename(path);
  return kind ? name.slice(0, -SUFFIXES[kind].length) : name;
}

/**
 * Decompresses `source` into a sparse `dest`, streaming. The output is written to
 * `dest.<pid>.tmp` and renamed only when complete, so `dest` is never a partial image, and two
 * builds decompressing the same archive (into different --out) never write one temp file.
 */
export async function decompressFile(source: string, dest: string): Promise<void> {
  const kind = compressionOf(source);
  if (!kind) throw new Error(`not a compressed file: ${source}`);
  const temp = `${dest}.${process.pid}.tmp`;
  const bar = progressBar(`decompressing ${basename(source)}`, (await stat(source)).size);
  const counter = new Transform({
    transform(chunk: Buffer, _encoding, callback) {
      bar.advance(chunk.length);
      callback(null, chunk);
    },
  });
  try {
    const pump = (decoder: Duplex) =>
      pipeline(createReadStream(source, { highWaterMark: 1024 * 1024 }), counter, decoder, createSparseWriteStream(temp));
    if (kind === 'gz') {
      await pump(createGunzip()).catch((error: unknown) => {
        throw isZlibError(error) ? corrupt(source, (error as Error).message) : error;
      });
    } else {
      await runTool(kind, source, pump);
    }
    bar.finish();
    await rename(temp, dest);
  } catch (error) {
    await rm(temp, { force: true });
    throw error;
  }
}

async function runTool(kind: keyof typeof TOOLS, source: string, pump: (decoder: Duplex) => Promise<void>): Promise<void> {
  const { command, args, debianPackage } = TOOLS[kind];
  const child = spawn(command, args, { stdio: ['pipe', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr.setEncoding('utf8').on('data', (text: string) => (stderr += text));
  let spawnError: NodeJS.ErrnoException | undefined;
  child.on('error', (error) => (spawnError = error));
  const exited = new Promise<number | null>((resolve) => child.on('close', (code) => resolve(code)));

  const pumpError = await pump(Duplex.from({ writable: child.stdin, readable: child.stdout })).then(
    () => undefined,
    (error: unknown) => {
      // A failed write to the image must not leave the tool blocked on a full pipe, and its pipes
      // must be closed: a stdout nobody reads never ends, and 'close' waits for it.
      child.kill();
      child.stdin.destroy();
      child.stdout.destroy();
      return error;
    },
  );
  const code = await exited;
  // A full disk under the image is the cause, whatever the killed tool said.
  if (refusedWrite(pumpError)) throw pumpError;
  // The tool's own verdict explains a broken pipe better than the pipe error does.
  if (spawnError?.code === 'ENOENT') {
    throw new UserError(
      `cannot decompress ${source}: the '${command}' command is missing; install it with: apt-get install ${debianPackage}`,
    );
  }
  if (code !== 0 && code !== null) throw corrupt(source, stderr.trim().split('\n')[0] ?? '');
  if (pumpError ?? spawnError) throw pumpError ?? spawnError;
}

function isZlibError(error: unknown): boolean {
  const code = (error as NodeJS.ErrnoException | undefined)?.code;
  return typeof code === 'string' && code.startsWith('Z_');
}

function corrupt(source: string, detail: string): UserError {
  return new UserError(`${source} is truncated or corrupt${detail ? ` (${detail})` : ''}; delete it and download it again`);
}
