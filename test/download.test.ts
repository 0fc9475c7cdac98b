import { randomBytes } from 'node:crypto';
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { downloadFile, fetchMd5 } from '../src/artifacts/download.js';
import { startServer, type TestServer } from './http-server.js';

describe('downloadFile', () => {
  let dir: string;
  let server: TestServer;
  const body = randomBytes(256 * 1024);
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'download-'));
    server = await startServer({ '/file.img': { body }, '/file.img.md5sum': { body: Buffer.from('<html>hi</html>') } });
  });
  afterEach(async () => {
    await server.close();
    await rm(dir, { recursive: true, force: true });
  });

  it('gives up on a server that goes silent, keeping what it got for a resume', async () => {
    server.files.get('/file.img')!.stallAfter = 1000;
    const dest = join(dir, 'file.img');
    // The idle timer runs on a fake clock, moved on only once the 1000 bytes are in the .part
    // file: on a loaded machine a real 0.2 s could pass before they arrive.
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout'] });
    try {
      const download = downloadFile(server.url('/file.img'), dest, { idleTimeoutMs: 200 });
      const failed = expect(download).rejects.toThrow(/no data received for 0\.2 s after 0\.0 MiB; run again to resume/);
      while ((await stat(`${dest}.part`).catch(() => undefined))?.size !== 1000) await new Promise((resolve) => setImmediate(resolve));
      vi.advanceTimersByTime(200);
      await failed;
    } finally {
      vi.useRealTimers();
    }
    expect((await stat(`${dest}.part`)).size).toBe(1000);

    server.files.get('/file.img')!.stallAfter = undefined;
    await downloadFile(server.url('/file.img'), dest);
    expect((await readFile(dest)).equals(body)).toBe(true);
    expect(server.requests.at(-1)?.range).toBe('bytes=1000-');
  });

  it('keeps a .tgz byte for byte, resumed too, from a server that labels it Content-Encoding: gzip', async () => {
    // Apache's stock `AddEncoding x-gzip .gz .tgz` does this: a client that inflates such an answer
    // (Node's own fetch always does) stores the tar, not the file whose checksum is pinned.
    const tgz = gzipSync(randomBytes(64 * 1024));
    server.files.set('/docker.tgz', { body: tgz, headers: { 'Content-Encoding': 'gzip' } });
    const dest = join(dir, 'docker.tgz');
    await downloadFile(server.url('/docker.tgz'), dest);
    expect((await readFile(dest)).equals(tgz)).toBe(true);

    await rm(dest);
    await writeFile(`${dest}.part`, tgz.subarray(0, 1000));
    await downloadFile(server.url('/docker.tgz'), dest);
    expect(server.requests.at(-1)?.range).toBe('bytes=1000-');
    expect((await readFile(dest)).equals(tgz)).toBe(true);
  });

  it('deletes the download when verification fails', async () => {
    const dest = join(dir, 'file.img');
    await expect(
      downloadFile(server.url('/file.img'), dest, {
        verify: async () => {
          throw new Error('bad');
        },
      }),
    ).rejects.toThrow('bad');
    await expect(stat(`${dest}.part`)).rejects.toThrow();
    await expect(stat(dest)).rejects.toThrow();
  });

  it('ignores an md5sum URL that answers with something else', async () => {
    expect(await fetchMd5(server.url('/file.img.md5sum'))).toBeUndefined();
    expect(await fetchMd5(server.url('/absent.md5sum'))).toBeUndefined();
  });
});
