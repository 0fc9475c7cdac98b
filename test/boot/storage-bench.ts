/**
 * Issue 13's storage benchmark, not a test (it asserts nothing): one boot of the boot test's
 * image (the ifupdown variant) whose check service builds the same ten-step Dockerfile under
 * overlay2, btrfs and vfs on the same guest (boot-check's storage_bench), and prints for each
 * the build's time, what its data image grew on the share (the host's disk) and what the file
 * system inside used: the table in docs/docker.md.
 *
 * Run as root, as `npm run test:boot` is run, and never beside it (both serve NFS on
 * 127.0.0.1:2049): npx tsx test/boot/storage-bench.ts
 * REFERENCE_DIR and BOOT_CACHE as for the boot test. The serial log is kept in
 * $BOOT_CACHE/logs/storage-bench.log.
 */
import { execFile as execFileCallback } from 'node:child_process';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { buildImage, REPO } from '../support/cli.js';
import { CONFIG, guestTree, LOGS, NAME } from './guest-tree.js';
import { startNfsServer } from './nfs.js';
import { bootFilesOf, bootImage, lastCheck } from './qemu.js';

const execFile = promisify(execFileCallback);
const DRIVERS = ['overlay2', 'btrfs', 'vfs'];

async function script(name: string, args: string[]): Promise<string> {
  const { stdout } = await execFile('bash', [`test/boot/${name}`, ...args], { cwd: REPO, maxBuffer: 64 << 20 });
  return stdout;
}

/** One table row from a bench-<driver> mark: seconds=… image-kib=… fs-kib=…, or its failure. */
function row(driver: string, mark: string | undefined): string {
  const fields = Object.fromEntries((mark ?? '').split(' ').map((field) => field.split('=')));
  if (!fields.seconds) return `| ${driver} | ${mark ?? 'no result'} | | |`;
  const mib = (kib: string) => (Number(kib) / 1024).toFixed(0);
  return `| ${driver} | ${fields.seconds} s | ${mib(fields['image-kib'])} MiB | ${mib(fields['fs-kib'])} MiB |`;
}

async function main(): Promise<void> {
  await mkdir(LOGS, { recursive: true });
  const work = await mkdtemp(join(tmpdir(), 'odroid-storage-bench-'));
  try {
    const [bundle, busybox, buildx] = (await script('make-docker-bundle.sh', [])).trim().split('\n');
    const stock = join(work, 'stock.img');
    await script('make-debian-image.sh', [stock, await guestTree(work, busybox, buildx)]);
    const config = join(work, 'config.json');
    await writeFile(config, JSON.stringify({ ...CONFIG, docker: { bundle } }, null, 2));
    const out = join(work, 'out');
    const built = await buildImage(['--input', stock, '--out', out, '--config', config]);
    if (built.code !== 0) throw new Error(`build-image failed (${built.code}):\n${built.stderr}`);
    await rm(stock);
    const image = join(out, `${NAME}.img`);
    const files = await bootFilesOf(image, work);

    const exportDir = join(work, 'export');
    await mkdir(join(exportDir, 'boot-check'), { recursive: true });
    await writeFile(join(exportDir, 'boot-check/plan'), 'storage-bench\n');
    const nfs = await startNfsServer(exportDir, CONFIG.nfs.export, join(work, 'nfs'));
    try {
      const log = join(LOGS, 'storage-bench.log');
      const result = await bootImage({ image, files, log, timeoutMs: 60 * 60_000 });
      console.log(
        [
          `storage benchmark (${new Date().toISOString()}, serial log ${log}, load average at the end ${loadavg()[0].toFixed(1)}):`,
          '| driver | build | data image on the share | file system used |',
          '|---|---|---|---|',
          ...DRIVERS.map((driver) => row(driver, lastCheck(result, `bench-${driver}`))),
        ].join('\n'),
      );
    } finally {
      await nfs.stop();
    }
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}

await main();
