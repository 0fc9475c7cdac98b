/** Fake Docker static bundles for tests: Docker's layout, small ELF-headed files, optional hostile entries. */
import { createHash, randomBytes } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { createGzip } from 'node:zlib';
import tar, { type Header } from 'tar-stream';

export const EM_AARCH64 = 183;
export const EM_X86_64 = 62;

/** Random bytes behind the header of a 64-bit little-endian ELF file for `machine`. */
function elf(machine: number, size: number): Buffer {
  const file = randomBytes(size);
  Buffer.from([0x7f, 0x45, 0x4c, 0x46, 2, 1, 1, 0]).copy(file, 0);
  file.writeUInt16LE(2, 16);
  file.writeUInt16LE(machine, 18);
  return file;
}

/** The files of docker/ in Docker's bundle; containerd spans many chunks of the gunzip and tar streams. */
export function bundleFiles(machine = EM_AARCH64): Record<string, Buffer> {
  return {
    dockerd: elf(machine, 300_000),
    containerd: elf(machine, 3 * 1024 * 1024 + 123),
    'containerd-shim-runc-v2': elf(machine, 70_000),
    ctr: elf(machine, 50_000),
    docker: elf(machine, 90_000),
    'docker-init': elf(machine, 4_000),
    'docker-proxy': elf(machine, 20_000),
    runc: elf(machine, 80_000),
  };
}

export type FakeEntry = Pick<Header, 'name'> & Partial<Header> & { content?: Buffer };

/** Entries no bundle should install: a path climbing out, a subdirectory, a symlink, a file outside docker/, odd names. */
export const HOSTILE_ENTRIES: FakeEntry[] = [
  { name: 'docker/../../etc/evil', content: Buffer.from('pwned\n') },
  { name: 'docker/extras/', type: 'directory' },
  { name: 'docker/extras/tool', content: Buffer.from('nested\n') },
  { name: 'docker/link', type: 'symlink', linkname: '/etc/shadow' },
  { name: 'README', content: Buffer.from('outside docker/\n') },
  { name: 'docker/-rf', content: Buffer.from('an option to rm\n') },
  { name: 'docker/.hidden', content: Buffer.from('hidden\n') },
  { name: 'docker/two\nlines', content: Buffer.from('a newline\n') },
  { name: 'docker/$(reboot)', content: Buffer.from('shell\n') },
];

export async function writeTgz(file: string, entries: FakeEntry[]): Promise<Buffer> {
  const pack = tar.pack();
  const out = createWriteStream(file);
  const closed = new Promise<void>((resolve, reject) => {
    out.on('close', resolve);
    out.on('error', reject);
  });
  pack.pipe(createGzip()).pipe(out);
  for (const { content, ...header } of entries) {
    await new Promise<void>((resolve, reject) =>
      pack.entry({ mode: 0o755, ...header }, content ?? Buffer.alloc(0), (error) => (error ? reject(error) : resolve())),
    );
  }
  pack.finalize();
  await closed;
  return readFile(file);
}

/** Writes a bundle .tgz: docker/, its files, then `extra`. */
export async function makeBundle(
  file: string,
  files: Record<string, Buffer> = bundleFiles(),
  extra: FakeEntry[] = [],
): Promise<{ bytes: Buffer; sha256: string }> {
  const entries: FakeEntry[] = [
    { name: 'docker/', type: 'directory' },
    ...Object.entries(files).map(([name, content]): FakeEntry => ({ name: `docker/${name}`, content })),
    ...extra,
  ];
  const bytes = await writeTgz(file, entries);
  return { bytes, sha256: createHash('sha256').update(bytes).digest('hex') };
}

/**
 * A build config file in `dir` whose docker.bundle is a small fake bundle there: tests that run
 * the whole build have no internet to fetch the default bundle from. `config` adds other keys.
 */
export async function configWithFakeBundle(dir: string, config: Record<string, unknown> = {}): Promise<string> {
  const bundle = join(dir, 'docker-fake.tgz');
  await makeBundle(bundle);
  const file = join(dir, 'config.json');
  await writeFile(file, JSON.stringify({ ...config, docker: { bundle } }));
  return file;
}
