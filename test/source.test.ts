import { execFileSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, readdir, readFile, rm, stat, truncate, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { availableSource, resolveSource, STOCK_LOCK, STOCK_MANIFEST } from '../src/artifacts/stock-image.js';
import { sha256File } from '../src/checksum.js';
import { UserError } from '../src/errors.js';
import { startServer, type TestServer } from './http-server.js';
import { sha256 } from './support/sha256.js';

const KiB = 1024;
const MiB = 1024 * KiB;

let fixtures: string;
let image: { path: string; sha256: string; size: number };
const compressed: Record<'xz' | 'gz' | 'zst', Buffer> = {} as never;

const md5 = (data: Buffer) => createHash('md5').update(data).digest('hex');

beforeAll(async () => {
  fixtures = await mkdtemp(join(tmpdir(), 'source-fixtures-'));
  // An "image" shaped like the real one: some data, long zero runs, zeros at the end.
  const data = Buffer.alloc(6 * MiB + 512);
  randomBytes(300 * KiB).copy(data, 0);
  randomBytes(200 * KiB).copy(data, 3 * MiB);
  const path = join(fixtures, 'disk.img');
  await writeFile(path, data);
  image = { path, sha256: sha256(data), size: data.length };
  execFileSync('xz', ['-0', '-T1', '-k', path]);
  execFileSync('gzip', ['-k', path]);
  execFileSync('zstd', ['-q', '-k', path]);
  for (const kind of ['xz', 'gz', 'zst'] as const) compressed[kind] = await readFile(`${path}.${kind}`);
});

afterAll(async () => {
  await rm(fixtures, { recursive: true, force: true });
});

let work: string;
let cacheDir: string;
beforeEach(async () => {
  work = await mkdtemp(join(tmpdir(), 'source-'));
  cacheDir = join(work, 'image');
  await mkdir(cacheDir);
});
afterEach(async () => {
  await rm(work, { recursive: true, force: true });
});

/** Copies a compressed fixture into the work dir under `name`. */
async function localCopy(kind: keyof typeof compressed, name = `disk.img.${kind}`): Promise<string> {
  const path = join(work, name);
  await writeFile(path, compressed[kind]);
  return path;
}

async function expectDecompressedImage(path: string) {
  expect(await sha256File(path)).toBe(image.sha256);
  const stats = await stat(path);
  expect(stats.size).toBe(image.size);
  // 500 KiB of data: the holes must not be allocated.
  expect(stats.blocks * 512).toBeLessThan(image.size / 4);
}

describe('local input', () => {
  it('returns a raw .img as is', async () => {
    const source = await resolveSource({ input: image.path, cacheDir });
    expect(source).toEqual({ path: image.path, origin: image.path });
    expect(await readdir(cacheDir)).toEqual([]);
  });

  it('rejects a missing, empty, non-file or unsupported input with a UserError', async () => {
    const missing = join(work, 'nope.img');
    await expect(resolveSource({ input: missing, cacheDir })).rejects.toThrow(
      new UserError(`input image not found: ${missing} (check the path given to --input)`),
    );
    const empty = join(work, 'empty.img');
    await writeFile(empty, '');
    await expect(resolveSource({ input: empty, cacheDir })).rejects.toThrow(/input image is empty/);
    const directory = join(work, 'dir.img');
    await mkdir(directory);
    await expect(resolveSource({ input: directory, cacheDir })).rejects.toThrow(/not a regular file/);
    await expect(resolveSource({ input: join(work, 'disk.zip'), cacheDir })).rejects.toThrow(/unsupported input/);
    await expect(resolveSource({ input: 'ftp://example.com/x.img', cacheDir })).rejects.toThrow(UserError);
  });

  it('decompresses an .img.xz once, sparse and identical, and again when the archive changes', async () => {
    const input = await localCopy('xz');
    const first = await resolveSource({ input, cacheDir });
    expect(first).toEqual({ path: join(cacheDir, 'disk.img'), origin: input });
    await expectDecompressedImage(first.path);
    expect((await readdir(cacheDir)).sort()).toEqual(['disk.img', 'disk.img.source.json']);

    const before = await stat(first.path);
    const second = await resolveSource({ input, cacheDir });
    const after = await stat(second.path);
    expect(second.path).toBe(first.path);
    expect([after.ino, after.mtimeMs]).toEqual([before.ino, before.mtimeMs]);

    // A replaced archive (new mtime) is decompressed again: the new file is renamed into place.
    await utimes(input, new Date(), new Date(Date.now() + 5000));
    const third = await resolveSource({ input, cacheDir });
    expect((await stat(third.path)).ino).not.toBe(before.ino);
    await expectDecompressedImage(third.path);
  });

  it("never writes or takes another build's temp decompression of the same archive", async () => {
    const input = await localCopy('xz');
    // What another build decompressing the same archive into another --out would be writing.
    const others = [join(cacheDir, 'disk.img.tmp'), join(cacheDir, `disk.img.${process.pid + 1}.tmp`)];
    for (const other of others) await writeFile(other, 'another build is writing this');
    const source = await resolveSource({ input, cacheDir });
    await expectDecompressedImage(source.path);
    for (const other of others) expect(await readFile(other, 'utf8')).toBe('another build is writing this');
  });

  it.each(['gz', 'zst'] as const)('decompresses an .img.%s', async (kind) => {
    const source = await resolveSource({ input: await localCopy(kind), cacheDir });
    await expectDecompressedImage(source.path);
  });

  it.each(['xz', 'gz', 'zst'] as const)('rejects a truncated .img.%s and leaves nothing in the cache', async (kind) => {
    const input = await localCopy(kind);
    await truncate(input, Math.floor(compressed[kind].length / 2));
    await expect(resolveSource({ input, cacheDir })).rejects.toThrow(
      new RegExp(`${input.replaceAll('.', '\\.')} is truncated or corrupt.*download it again`),
    );
    await expect(resolveSource({ input, cacheDir })).rejects.toThrow(UserError);
    expect(await readdir(cacheDir)).toEqual([]);
  });

  it('names the Debian package when xz is missing', async () => {
    const input = await localCopy('xz');
    const path = process.env.PATH;
    process.env.PATH = work;
    try {
      await expect(resolveSource({ input, cacheDir })).rejects.toThrow(/'xz' command is missing.*apt-get install xz-utils/);
    } finally {
      process.env.PATH = path;
    }
    expect(await readdir(cacheDir)).toEqual([]);
  });
});

describe('download', () => {
  let server: TestServer;
  const xzName = 'disk.img.xz';
  beforeEach(async () => {
    server = await startServer({
      [`/${xzName}`]: { body: compressed.xz },
      [`/${xzName}.md5sum`]: { body: Buffer.from(`${md5(compressed.xz)}  ${xzName}\n`) },
    });
  });
  afterEach(async () => {
    await server.close();
  });

  const writeManifest = (overrides: Partial<Record<'url' | 'md5Url', string>> = {}) =>
    writeFile(
      join(cacheDir, STOCK_MANIFEST),
      JSON.stringify({ url: server.url(`/${xzName}`), file: xzName, md5Url: server.url(`/${xzName}.md5sum`), ...overrides }),
    );
  const readLock = async () => JSON.parse(await readFile(join(cacheDir, STOCK_LOCK), 'utf8'));
  const cached = async () => (await readdir(cacheDir)).filter((name) => name !== STOCK_MANIFEST && name !== STOCK_LOCK);

  it('for --dry-run, says what a build would download or decompress first, and does neither', async () => {
    await writeManifest();
    expect(await availableSource({ cacheDir })).toEqual({
      wouldFirst: `download ${server.url(`/${xzName}`)} into ${join(cacheDir, xzName)}`,
    });
    const url = server.url(`/${xzName}`);
    expect(await availableSource({ input: url, cacheDir })).toEqual({ wouldFirst: `download ${url} into ${join(cacheDir, xzName)}` });
    expect(server.requests).toEqual([]);
    expect(await cached()).toEqual([]);
    // Downloaded but not decompressed, then both: what is at hand is planned from.
    await writeFile(join(cacheDir, xzName), compressed.xz);
    expect(await availableSource({ cacheDir })).toEqual({
      wouldFirst: `decompress ${join(cacheDir, xzName)} into ${join(cacheDir, 'disk.img')}`,
    });
    expect(await cached()).toEqual([xzName]);
    const built = await resolveSource({ cacheDir });
    expect(await availableSource({ cacheDir })).toEqual(built);
  });

  it('downloads the stock image, verifies its md5, records the lock and decompresses it', async () => {
    await writeManifest();
    const source = await resolveSource({ cacheDir });
    expect(source).toEqual({ path: join(cacheDir, 'disk.img'), origin: server.url(`/${xzName}`) });
    await expectDecompressedImage(source.path);
    expect(await readLock()).toEqual({ [xzName]: { sha256: sha256(compressed.xz), size: compressed.xz.length } });
    expect(server.requests.map((r) => r.path)).toEqual([`/${xzName}.md5sum`, `/${xzName}`]);

    // Cached and locked: no network at all the second time.
    await server.close();
    expect(await resolveSource({ cacheDir })).toEqual(source);
  });

  it('keeps what an interrupted download received, and the next run resumes from there', async () => {
    await writeManifest();
    const half = Math.floor(compressed.xz.length / 2);
    server.files.get(`/${xzName}`)!.dropAfter = half;
    await expect(resolveSource({ cacheDir })).rejects.toThrow(/cannot download .*run again to resume/);
    // How much of the cut answer the client had read when the connection ended depends on the
    // scheduler; what it keeps is always the file's beginning.
    const kept = await readFile(join(cacheDir, `${xzName}.part`));
    expect(kept.length).toBeLessThanOrEqual(half);
    expect(kept.equals(compressed.xz.subarray(0, kept.length))).toBe(true);

    const source = await resolveSource({ cacheDir });
    await expectDecompressedImage(source.path);
    expect(server.requests.filter((r) => r.path === `/${xzName}`).map((r) => r.range)).toEqual([
      undefined,
      kept.length > 0 ? `bytes=${kept.length}-` : undefined,
    ]);
    expect(await cached()).not.toContain(`${xzName}.part`);
  });

  it('resumes a .part left by an earlier run with a Range request for the rest', async () => {
    await writeManifest();
    const half = Math.floor(compressed.xz.length / 2);
    await writeFile(join(cacheDir, `${xzName}.part`), compressed.xz.subarray(0, half));
    await expectDecompressedImage((await resolveSource({ cacheDir })).path);
    expect(server.requests.filter((r) => r.path === `/${xzName}`).map((r) => r.range)).toEqual([`bytes=${half}-`]);
    expect(await cached()).not.toContain(`${xzName}.part`);
  });

  it('starts over when the server ignores Range', async () => {
    await writeManifest();
    const file = server.files.get(`/${xzName}`)!;
    file.dropAfter = 1000;
    await expect(resolveSource({ cacheDir })).rejects.toThrow(UserError);
    file.ignoreRange = true;
    await expectDecompressedImage((await resolveSource({ cacheDir })).path);
  });

  it('finishes a download whose .part is already complete', async () => {
    await writeManifest();
    await writeFile(join(cacheDir, `${xzName}.part`), compressed.xz);
    await expectDecompressedImage((await resolveSource({ cacheDir })).path);
    expect(server.requests.find((r) => r.path === `/${xzName}`)?.range).toBe(`bytes=${compressed.xz.length}-`);
  });

  it('rejects an md5 mismatch and caches nothing', async () => {
    server.files.get(`/${xzName}.md5sum`)!.body = Buffer.from(`${'0'.repeat(32)}  ${xzName}\n`);
    await writeManifest();
    await expect(resolveSource({ cacheDir })).rejects.toThrow(
      new UserError(
        `checksum mismatch for ${xzName}: ${server.url(`/${xzName}.md5sum`)} expects md5 ${'0'.repeat(32)}, got md5 ${md5(compressed.xz)}; it was deleted: run again to download it afresh`,
      ),
    );
    expect(await cached()).toEqual([]);
  });

  it('requires the md5sum for the stock image', async () => {
    await writeManifest({ md5Url: server.url('/missing.md5sum') });
    await expect(resolveSource({ cacheDir })).rejects.toThrow(/cannot verify the stock image/);
    expect(await cached()).toEqual([]);
  });

  it('rejects a download that does not match the lock, and a cached file that no longer does', async () => {
    await writeManifest();
    const wrong = { sha256: 'f'.repeat(64), size: compressed.xz.length };
    await writeFile(join(cacheDir, STOCK_LOCK), JSON.stringify({ [xzName]: wrong }));
    await expect(resolveSource({ cacheDir })).rejects.toThrow(
      /checksum mismatch for disk\.img\.xz: \S+stock\.lock\.json expects sha256 f{64} \(\d+ bytes\), got sha256 [0-9a-f]{64} \(\d+ bytes\)/,
    );
    expect(await cached()).toEqual([]);

    await rm(join(cacheDir, STOCK_LOCK));
    await resolveSource({ cacheDir });
    const xzPath = join(cacheDir, xzName);
    const tampered = Buffer.from(compressed.xz);
    tampered[100] ^= 1;
    await writeFile(xzPath, tampered);
    await expect(resolveSource({ cacheDir })).rejects.toThrow(/checksum mismatch for disk\.img\.xz/);
    expect(await cached()).not.toContain(xzName);
  });

  it('downloads an arbitrary URL, verified when an md5sum is published and unverified when not', async () => {
    const url = server.url(`/${xzName}`);
    const source = await resolveSource({ input: url, cacheDir });
    expect(source.origin).toBe(url);
    await expectDecompressedImage(source.path);
    expect(await readdir(cacheDir)).not.toContain(STOCK_LOCK);

    server.files.set('/other.img.gz', { body: compressed.gz });
    await expectDecompressedImage((await resolveSource({ input: server.url('/other.img.gz'), cacheDir })).path);
    expect(server.requests.map((r) => r.path)).toContain('/other.img.gz.md5sum');
  });

  it('reports an HTTP error', async () => {
    await expect(resolveSource({ input: server.url('/gone.img.xz'), cacheDir })).rejects.toThrow(
      /cannot download .*gone\.img\.xz: HTTP 404 Not Found/,
    );
  });

  it('points at --input when the server is unreachable', async () => {
    await writeManifest();
    await server.close();
    await expect(resolveSource({ cacheDir })).rejects.toThrow(
      /cannot download .*: connection refused .*check the network, or pass a local image with --input PATH/,
    );
    expect(await cached()).toEqual([]);
  });
});

describe('the committed stock manifest', () => {
  it('pins the HardKernel image and its md5sum', async () => {
    const manifest = JSON.parse(await readFile(new URL('../image/stock.json', import.meta.url), 'utf8'));
    expect(manifest.md5Url).toBe(`${manifest.url}.md5sum`);
    expect(basename(new URL(manifest.url).pathname)).toBe(manifest.file);
    expect(manifest.file).toBe('ubuntu-18.04.3-3.16-minimal-odroid-c2-20190814.img.xz');
  });
});
