import { execFileSync } from 'node:child_process';
import { open, readdir, readFile, stat, truncate, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { IMAGE_CACHE_DIR } from '../src/cli/build-flags.js';
import { configWithFakeBundle } from './docker-bundle-fixture.js';
import { startServer, type TestServer } from './http-server.js';
import { buildImage } from './support/cli.js';
import { debugfsCat } from './support/debugfs.js';
import { e2fsckClean, fsckFatClean } from './support/fsck.js';
import { copyOfStockImage, partitionOffsets, ROOT_UUID, stockImage, tempDir, treeListing } from './support/images.js';
import { dumpPartitions } from './support/mtools.js';
import { sha256 as bufferSha256, sha256File as sha256 } from './support/sha256.js';

/** A copy of the stock fixture whose root file system, from `skip` bytes in, is random bytes. */
/** `img?offset=N` of its rootfs, as e2fsprogs open a partition inside an image. */
async function rootfsSpecOf(img: string): Promise<string> {
  const rootfs = (await partitionOffsets(img)).partitions.find((p) => p.number === 2)!;
  return `${img}?offset=${rootfs.offset}`;
}

async function randomRootfs(dir: string, skip: number): Promise<string> {
  const img = await copyOfStockImage('stock', dir);
  const rootfs = (await partitionOffsets(img)).partitions[1];
  const MiB = 1024 * 1024;
  execFileSync('dd', [
    'if=/dev/urandom',
    `of=${img}`,
    'bs=1M',
    `seek=${(rootfs.offset + skip) / MiB}`,
    `count=${Math.min(64, (rootfs.size - skip) / MiB)}`,
    'conv=notrunc',
    'status=none',
  ]);
  return img;
}

async function firstMiB(path: string): Promise<Buffer> {
  const file = await open(path, 'r');
  try {
    const { buffer, bytesRead } = await file.read(Buffer.alloc(1024 * 1024), 0, 1024 * 1024, 0);
    return buffer.subarray(0, bytesRead);
  } finally {
    await file.close();
  }
}

describe('npm run build-image', () => {
  it('patches a stock-like image into out/<name>.img, keeping the boot loader and the input intact', async () => {
    const input = await stockImage('stock');
    const inputSha = await sha256(input);
    const out = await tempDir();
    const run = await buildImage([
      '--input',
      input,
      '--out',
      out,
      '--name',
      'test-builder',
      '--config',
      await configWithFakeBundle(await tempDir()),
    ]);
    expect(run.stderr).not.toMatch(/internal error/);
    expect(run.code).toBe(0);
    expect(run.stdout).toContain(`built ${join(out, 'test-builder.img')}`);
    // The fixture has no iptables: the docker step says so once, in the summary, though the space
    // check plans the image before the patch does.
    expect(run.stdout.match(/^ {2}warning {2}the image has no iptables/gm)).toHaveLength(1);
    expect(run.stderr).not.toMatch(/no iptables/);
    const img = join(out, 'test-builder.img');
    // secrets/: the device's keys, made by the first build and reused by the next; host/: the host kit.
    // No test-builder.img.sha256: a plain build does not hash the image, and says how to get one.
    expect((await readdir(out)).sort()).toEqual(['host', 'secrets', 'test-builder.img']);
    expect(run.stdout).toContain(`  sha256   not computed: build with --checksum for test-builder.img.sha256, or run sha256sum ${img}\n`);
    expect(await sha256(input)).toBe(inputSha);
    // bl1, the partition table and u-boot: the whole first MiB is untouched.
    expect((await firstMiB(img)).equals(await firstMiB(input))).toBe(true);
    expect((await stat(img)).size).toBe((await stat(input)).size);
    expect((await e2fsckClean(img)).ok).toBe(true);
    expect((await fsckFatClean(img)).ok).toBe(true);
    const stamp = JSON.parse(await debugfsCat(img, '/etc/odroid-buildx-image.json'));
    expect(stamp).toMatchObject({ tool: 'odroid-buildx-image', name: 'test-builder' });
    // Sparse stays sparse: the copy allocates about what the input allocates, not its size.
    const allocated = async (p: string) => (await stat(p)).blocks * 512;
    expect(await allocated(img)).toBeLessThan((await allocated(input)) + 16 * 1024 * 1024);
    expect(await allocated(img)).toBeLessThan((await stat(img)).size / 4);
  });

  it('is idempotent: building again from its own output changes no file in either partition', async () => {
    const out = await tempDir();
    const config = await configWithFakeBundle(await tempDir());
    const args = ['--input', await stockImage('stock'), '--out', out, '--name', 'twice', '--config', config, '--checksum'];
    const first = await buildImage(args);
    expect(first.code).toBe(0);
    // --checksum: twice.img.sha256 in sha256sum's format, its sum in the summary.
    execFileSync('sha256sum', ['-c', 'twice.img.sha256'], { cwd: out });
    const sum = (await readFile(join(out, 'twice.img.sha256'), 'utf8')).split(' ')[0];
    expect(first.stdout).toContain(`  sha256   ${sum}  (${join(out, 'twice.img.sha256')})\n`);
    const once = join(await tempDir(), 'once.img');
    execFileSync('cp', ['--sparse=always', join(out, 'twice.img'), once]);
    // Same --out, so the same secrets: a rebuild must not change keys or anything else.
    const second = await buildImage(['--input', once, '--out', out, '--name', 'twice', '--config', config]);
    expect(second.code).toBe(0);
    // Without --checksum the first build's twice.img.sha256 goes: nothing says the new image matches it.
    expect((await readdir(out)).sort()).toEqual(['host', 'secrets', 'twice.img']);
    const [a, b] = [await dumpPartitions(once), await dumpPartitions(join(out, 'twice.img'))];
    // diff -r compares content, file types and link targets; rdump keeps modes and owners, checked by find.
    execFileSync('diff', ['-r', '--no-dereference', a, b]);
    expect(await treeListing(b)).toEqual(await treeListing(a));
  });

  it('--dry-run lists the operations and writes nothing', async () => {
    const out = await tempDir();
    const config = await configWithFakeBundle(await tempDir());
    const run = await buildImage(['--input', await stockImage('stock'), '--out', out, '--config', config, '--dry-run']);
    expect(run.code).toBe(0);
    expect(run.stdout).toMatch(/build-stamp:\n {2}write {3}rootfs:\/etc\/odroid-buildx-image.json/);
    expect(run.stderr.match(/^warning: the image has no iptables/gm)).toHaveLength(1);
    expect(await readdir(out)).toEqual([]);
  });

  it('--dry-run from a compressed input not yet decompressed says what a build would do and writes nothing into image/', async () => {
    const dir = await tempDir();
    const name = `dry-run-${process.pid}-${Date.now()}`;
    const input = join(dir, `${name}.img.xz`);
    execFileSync('sh', ['-c', `xz -c -0 '${await stockImage('stock')}' > '${input}'`]);
    const config = await configWithFakeBundle(await tempDir());
    const run = await buildImage(['--input', input, '--out', join(dir, 'out'), '--config', config, '--dry-run']);
    expect(run.stderr).not.toMatch(/internal error/);
    expect(run.code).toBe(0);
    const cached = join(IMAGE_CACHE_DIR, `${name}.img`);
    expect(run.stdout).toBe(
      `dry run: a build would first decompress ${input} into ${cached}; --dry-run writes nothing, so it stops here: build once (image/ keeps what it fetches), or give local files\n`,
    );
    expect((await readdir(IMAGE_CACHE_DIR)).filter((file) => file.startsWith(name))).toEqual([]);
    expect(await readdir(dir)).toEqual([`${name}.img.xz`]);
  });
});

describe('--dry-run with a Docker bundle not yet downloaded', () => {
  let server: TestServer;
  afterEach(async () => {
    await server?.close();
  });

  it('says what a build would download and requests nothing', async () => {
    const dir = await tempDir();
    const bundle = await readFile(JSON.parse(await readFile(await configWithFakeBundle(dir), 'utf8')).docker.bundle);
    const file = `docker-dry-run-${process.pid}-${Date.now()}.tgz`;
    server = await startServer({ [`/${file}`]: { body: bundle } });
    const config = join(dir, 'remote.json');
    await writeFile(config, JSON.stringify({ docker: { bundle: server.url(`/${file}`), sha256: bufferSha256(bundle) } }));
    const run = await buildImage(['--input', await stockImage('stock'), '--out', join(dir, 'out'), '--config', config, '--dry-run']);
    expect(run.stderr).not.toMatch(/internal error/);
    expect(run.code).toBe(0);
    expect(run.stdout).toContain(`dry run: a build would first download ${server.url(`/${file}`)} into ${join(IMAGE_CACHE_DIR, file)};`);
    expect(server.requests).toEqual([]);
    expect((await readdir(IMAGE_CACHE_DIR)).filter((name) => name.startsWith(file))).toEqual([]);
  });
});

describe('bad input: one clear line, non-zero exit, input untouched, no image written', () => {
  const cases: { name: string; make: (dir: string) => Promise<{ input: string; out?: string }>; message: RegExp }[] = [
    { name: 'missing file', make: async (dir) => ({ input: join(dir, 'nope.img') }), message: /not found/ },
    {
      name: 'truncated .xz',
      make: async (dir) => {
        const xz = join(dir, 'stock.img.xz');
        execFileSync('sh', ['-c', `xz -T1 -0 -c '${await stockImage('stock')}' > '${xz}'`]);
        await truncate(xz, Math.floor((await stat(xz)).size / 2));
        return { input: xz };
      },
      message: /truncated|corrupt/,
    },
    {
      name: 'zero-filled file',
      make: async () => ({ input: await stockImage('zero') }),
      message: /no partition table/,
    },
    { name: 'GPT image', make: async () => ({ input: await stockImage('gpt') }), message: /GPT/ },
    { name: 'no ext4 partition', make: async () => ({ input: await stockImage('no-ext4') }), message: /no ext4/ },
    {
      name: 'dirty journal',
      make: async (dir) => ({ input: await copyOfStockImage('dirty-journal', dir) }),
      message: /journal needs recovery/,
    },
    // The rootfs overwritten with random bytes: whole, or past its first MiB (superblock and
    // group descriptors intact, inode tables and directories garbage).
    {
      name: 'rootfs overwritten',
      make: async (dir) => ({ input: await randomRootfs(dir, 0) }),
      message: /root file system is damaged or missing; check it with e2fsck -fn '.*\?offset=\d+'/,
    },
    {
      name: 'rootfs overwritten past its first MiB',
      make: async (dir) => ({ input: await randomRootfs(dir, 1024 * 1024) }),
      message: /^error: the root file system \(partition 2 of .*\) is damaged: .*; check it with e2fsck -fn '.*\?offset=\d+'/,
    },
    {
      name: 'ext4 with the quota feature',
      make: async (dir) => {
        const img = await copyOfStockImage('stock', dir);
        execFileSync('tune2fs', ['-O', 'quota', await rootfsSpecOf(img)], { stdio: 'ignore' });
        return { input: img };
      },
      message:
        /^error: the root file system \(partition 2 of .*\) uses the unsupported ext4 feature quota: .*tune2fs -O \^quota '.*\?offset=\d+'/,
    },
    ...(['bigalloc', 'inline_data', 'casefold'] as const).map((feature) => ({
      name: `ext4 made with ${feature}`,
      make: async (dir: string) => {
        const img = await copyOfStockImage('stock', dir);
        const rootfs = (await partitionOffsets(img)).partitions.find((p) => p.number === 2)!;
        const options = ['-O', feature, ...(feature === 'bigalloc' ? ['-C', '16384'] : [])];
        execFileSync('mkfs.ext4', [
          '-q',
          '-F',
          '-U',
          ROOT_UUID,
          ...options,
          '-E',
          `offset=${rootfs.offset}`,
          img,
          `${rootfs.size / 1024}k`,
        ]);
        return { input: img };
      },
      message: new RegExp(`uses the unsupported ext4 feature ${feature}: .*use a stock image made without it`),
    })),
    {
      name: 'ext4 larger than its partition',
      make: async (dir) => {
        const img = await copyOfStockImage('stock', dir);
        const rootfs = (await partitionOffsets(img)).partitions.find((p) => p.number === 2)!;
        execFileSync('sfdisk', ['-q', '--no-reread', '--no-tell-kernel', '-N', '2', img], { input: `,${rootfs.size / 512 - 16384}\n` });
        return { input: img };
      },
      message: /is larger than its partition \(\d+ bytes in \d+\): .*resize2fs/,
    },
    {
      name: '--out not writable',
      make: async (dir) => {
        const blocker = join(dir, 'a-file');
        await writeFile(blocker, 'not a directory');
        return { input: await stockImage('stock'), out: join(blocker, 'out') };
      },
      message: /output directory/,
    },
  ];
  for (const c of cases) {
    it(c.name, async () => {
      const dir = await tempDir();
      const { input, out: outArg } = await c.make(dir);
      const out = outArg ?? join(dir, 'out');
      const before = await sha256(input).catch(() => 'absent');
      const run = await buildImage(['--input', input, '--out', out, '--name', 'bad']);
      expect(run.code).not.toBe(0);
      const lines = run.stderr
        .trim()
        .split('\n')
        .filter((line) => line.startsWith('error:'));
      expect(lines).toHaveLength(1);
      expect(lines[0]).toMatch(c.message);
      expect(run.stderr).not.toMatch(/internal error| {4}at /);
      expect(await sha256(input).catch(() => 'absent')).toBe(before);
      const left = await readdir(out).catch(() => []);
      expect(left.filter((f) => f.endsWith('.img') || f.endsWith('.tmp'))).toEqual([]);
    });
  }
});
