import { mkdir, readFile, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import {
  BUNDLE_LOCK,
  BUNDLE_MANIFEST,
  BUNDLE_URL_PATTERN,
  bundleEntries,
  type DockerBundle,
  entryFate,
  listBundle,
  resolveBundle,
} from '../src/artifacts/docker-bundle.js';
import { UserError } from '../src/errors.js';
import { bundleFiles, EM_X86_64, HOSTILE_ENTRIES, makeBundle } from './docker-bundle-fixture.js';
import { startServer } from './http-server.js';
import { tempDir } from './support/images.js';

let work: string;
beforeAll(async () => {
  work = await tempDir();
});

let stderr = '';
afterEach(() => {
  vi.restoreAllMocks();
  stderr = '';
});
// Progress bars and warnings go to stderr; tests read the warnings.
const captureStderr = () =>
  vi.spyOn(process.stderr, 'write').mockImplementation((chunk: string | Uint8Array) => {
    stderr += String(chunk);
    return true;
  });

const exists = (file: string) =>
  stat(file).then(
    () => true,
    () => false,
  );

describe('resolveBundle', () => {
  it('takes a local path, checking docker.sha256 when given', async () => {
    const file = path.join(work, 'local.tgz');
    const { sha256 } = await makeBundle(file);
    const cache = path.join(work, 'unused-cache');
    expect(await resolveBundle({ bundle: file }, cache)).toEqual({ path: file, sha256, origin: file });
    expect(await resolveBundle({ bundle: file, sha256 }, cache)).toMatchObject({ sha256 });
    const wrong = 'ab'.repeat(32);
    await expect(resolveBundle({ bundle: file, sha256: wrong }, cache)).rejects.toThrow(
      new UserError(`docker.bundle ${file} has sha256 ${sha256}, but docker.sha256 is ${wrong}; check which of the two is wrong`),
    );
    // The user's own file is never deleted.
    expect(await exists(file)).toBe(true);
    expect(await exists(cache)).toBe(false);
  });

  it('says how to get the bundle when the path does not exist', async () => {
    const missing = path.join(work, 'docker-27.0.0.tgz');
    await expect(resolveBundle({ bundle: missing }, work)).rejects.toThrow(
      new UserError(
        `docker.bundle ${missing} is not a file; give the path of docker-<version>.tgz for aarch64, or its URL (${BUNDLE_URL_PATTERN})`,
      ),
    );
  });

  it('downloads a URL once into the cache and pins it in the lock on first use', async () => {
    const { bytes, sha256 } = await makeBundle(path.join(work, 'served.tgz'));
    const route = '/linux/static/stable/aarch64/docker-28.1.0.tgz';
    const server = await startServer({ [route]: { body: bytes } });
    const cache = path.join(await tempDir(), 'cache');
    try {
      captureStderr();
      const first = await resolveBundle({ bundle: server.url(route) }, cache);
      expect(first).toEqual({ path: path.join(cache, 'docker-28.1.0.tgz'), sha256, origin: server.url(route) });
      expect(JSON.parse(await readFile(path.join(cache, BUNDLE_LOCK), 'utf8'))).toEqual({
        'docker-28.1.0.tgz': { sha256, size: bytes.length },
      });
      expect(stderr).toContain(`recorded the sha256 of docker-28.1.0.tgz in ${path.join(cache, BUNDLE_LOCK)}`);

      expect(await resolveBundle({ bundle: server.url(route) }, cache)).toEqual(first);
      expect(server.requests).toHaveLength(1);

      // A cached file that no longer matches the lock is deleted, not used.
      await writeFile(first.path, 'tampered');
      await expect(resolveBundle({ bundle: server.url(route) }, cache)).rejects.toThrow(
        `checksum mismatch for docker-28.1.0.tgz: ${path.join(cache, BUNDLE_LOCK)} expects sha256 ${sha256}`,
      );
      expect(await exists(first.path)).toBe(false);
    } finally {
      await server.close();
    }
  });

  it('refuses a download that does not match docker.sha256 and keeps nothing of it', async () => {
    const { bytes } = await makeBundle(path.join(work, 'served-wrong.tgz'));
    const server = await startServer({ '/docker-28.2.0.tgz': { body: bytes } });
    const cache = path.join(await tempDir(), 'cache');
    try {
      captureStderr();
      const wrong = '0'.repeat(64);
      const attempt = resolveBundle({ bundle: server.url('/docker-28.2.0.tgz'), sha256: wrong }, cache);
      await expect(attempt).rejects.toThrow(UserError);
      await expect(attempt).rejects.toThrow(`checksum mismatch for docker-28.2.0.tgz: docker.sha256 expects sha256 ${wrong}`);
      expect(await exists(path.join(cache, 'docker-28.2.0.tgz'))).toBe(false);
      expect(await exists(path.join(cache, 'docker-28.2.0.tgz.part'))).toBe(false);
      expect(await exists(path.join(cache, BUNDLE_LOCK))).toBe(false);
    } finally {
      await server.close();
    }
  });

  it('points a failed download at docker.bundle, not at --input', async () => {
    const server = await startServer({});
    try {
      const attempt = resolveBundle({ bundle: server.url('/docker-404.tgz') }, path.join(await tempDir(), 'cache'));
      await expect(attempt).rejects.toThrow(/HTTP 404 .*; check the URL, or set docker\.bundle to a local copy of the \.tgz$/);
    } finally {
      await server.close();
    }
  });

  it('without docker.bundle uses the manifest in the cache dir, or says how to set docker.bundle', async () => {
    const { bytes, sha256 } = await makeBundle(path.join(work, 'default.tgz'));
    const server = await startServer({ '/docker-28.3.0.tgz': { body: bytes } });
    const cache = path.join(await tempDir(), 'cache');
    try {
      await expect(resolveBundle({}, cache)).rejects.toThrow(
        new UserError(
          `docker.bundle is not set and the default bundle manifest ${path.join(cache, BUNDLE_MANIFEST)} is missing; set docker.bundle to the URL or path of Docker's static bundle (${BUNDLE_URL_PATTERN}), or restore the manifest from git`,
        ),
      );
      await mkdir(cache, { recursive: true });
      await writeFile(
        path.join(cache, BUNDLE_MANIFEST),
        JSON.stringify({ url: server.url('/docker-28.3.0.tgz'), file: 'docker-28.3.0.tgz', sha256 }),
      );
      captureStderr();
      expect(await resolveBundle({}, cache)).toEqual({
        path: path.join(cache, 'docker-28.3.0.tgz'),
        sha256,
        origin: server.url('/docker-28.3.0.tgz'),
      });
      expect(server.requests.map((request) => request.path)).toEqual(['/docker-28.3.0.tgz']);
    } finally {
      await server.close();
    }
  });

  it('the committed manifest pins an aarch64 static bundle from download.docker.com', async () => {
    const manifest = JSON.parse(await readFile(new URL('../image/docker.json', import.meta.url), 'utf8'));
    expect(manifest.url).toMatch(/^https:\/\/download\.docker\.com\/linux\/static\/stable\/aarch64\/docker-\d+\.\d+\.\d+\.tgz$/);
    expect(manifest.url.endsWith(`/${manifest.file}`)).toBe(true);
  });
});

describe('reading the bundle', () => {
  const local = async (
    name: string,
    ...args: Parameters<typeof makeBundle> extends [string, ...infer Rest] ? Rest : never
  ): Promise<DockerBundle> => {
    const file = path.join(work, name);
    const { sha256 } = await makeBundle(file, ...args);
    return { path: file, sha256, origin: file };
  };

  it('only plain files directly under docker/ are installed', () => {
    expect(entryFate({ name: 'docker/dockerd', type: 'file' })).toEqual({ install: 'dockerd' });
    expect(entryFate({ name: './docker/runc' })).toEqual({ install: 'runc' });
    expect(entryFate({ name: 'docker/', type: 'directory' })).toEqual({ ignore: true });
    for (const name of [
      'docker/..',
      'docker/../x',
      'docker/../../etc/evil',
      '/docker/x',
      'docker/sub/x',
      'x',
      'docker/-rf',
      'docker/.hidden',
      'docker/a\nb',
      'docker/a b',
    ]) {
      expect(entryFate({ name, type: 'file' }), name).toHaveProperty('skip');
    }
    expect(entryFate({ name: 'docker/x', type: 'link', linkname: 'docker/y' })).toEqual({ skip: 'a link, not a regular file' });
  });

  it('lists the binaries and reports what it leaves out', async () => {
    const bundle = await local('hostile.tgz', bundleFiles(), HOSTILE_ENTRIES);
    captureStderr();
    expect((await listBundle(bundle)).binaries).toEqual(Object.keys(bundleFiles()));
    expect(stderr).toContain('leaving out docker/../../etc/evil: not a plain file name directly under docker/');
    expect(stderr).toContain('leaving out docker/link: a symlink, not a regular file');
    expect(stderr).toContain('leaving out docker/extras/tool');
    expect(stderr).toContain('leaving out README: not under docker/');
    for (const name of ['docker/-rf', 'docker/.hidden', '"docker/two\\nlines"', 'docker/$(reboot)']) {
      expect(stderr).toContain(
        `warning: docker bundle: leaving out ${name}: not a plain binary name (letters, digits and . _ + -, not starting with - or .)\n`,
      );
    }
  });

  it('streams each binary byte for byte as root:root 0755', async () => {
    const files = bundleFiles();
    const bundle = await local('stream.tgz', files, HOSTILE_ENTRIES);
    const seen: Record<string, Buffer> = {};
    for await (const entry of bundleEntries(bundle)) {
      expect(entry).toMatchObject({ type: 'file', mode: 0o755, uid: 0, gid: 0 });
      if (entry.type !== 'file') continue;
      const chunks: Buffer[] = [];
      for await (const chunk of entry.data) chunks.push(Buffer.from(chunk));
      seen[entry.path] = Buffer.concat(chunks);
    }
    expect(Object.keys(seen)).toEqual(Object.keys(files));
    for (const [name, content] of Object.entries(files)) expect(seen[name].equals(content), name).toBe(true);
  });

  it('refuses a bundle for another architecture, an incomplete one, and a file that is no .tgz', async () => {
    await expect(listBundle(await local('x86.tgz', bundleFiles(EM_X86_64)))).rejects.toThrow(
      /holds x86-64 binaries \(docker\/dockerd\), the ODROID-C2 needs aarch64: use https:\/\/download\.docker\.com/,
    );
    const { runc: _runc, containerd: _containerd, ...incomplete } = bundleFiles();
    await expect(listBundle(await local('partial.tgz', incomplete))).rejects.toThrow(
      /has no docker\/containerd, docker\/runc; give Docker's static/,
    );

    const notGzip = path.join(work, 'bad.tgz');
    await writeFile(notGzip, 'not a tarball');
    const attempt = listBundle({ path: notGzip, sha256: '', origin: notGzip });
    await expect(attempt).rejects.toThrow(UserError);
    await expect(attempt).rejects.toThrow(`docker.bundle ${notGzip} is not a readable .tgz`);
  });
});
