/**
 * npm run bench: where the build's time and memory go, against the unavoidable floors
 * measured in the same run on the same machine. Prints a Markdown report (paste it into
 * the README's performance section, and the run's conditions into docs/performance.md).
 */
import { randomBytes } from 'node:crypto';
import { appendFileSync, mkdirSync, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, tmpdir, totalmem } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { resolveConfig } from '../src/config/load.js';
import { patchImage } from '../src/engine/patch.js';
import { withRootfs } from '../src/image/ext4.js';
import type { ImageLayout } from '../src/image/layout.js';
import { openImage } from '../src/image/open.js';
import { docker } from '../src/steps/docker.js';
import { bundleFiles, makeBundle } from '../test/docker-bundle-fixture.js';
import { $ } from '../test/support/zx.js';

const repo = fileURLToPath(new URL('..', import.meta.url));
const work = mkdtempSync(join(tmpdir(), 'odroid-bench-'));
const MiB = 1024 * 1024;
const rows: string[] = [];
/** --out of the single builds: the first makes the secrets, the others reuse them as rebuilds do. */
const out = join(work, 'out');

async function seconds<T>(fn: () => Promise<T>): Promise<[T, number]> {
  const start = performance.now();
  const result = await fn();
  return [result, (performance.now() - start) / 1000];
}

async function makeStockLike(sizeMiB: number): Promise<string> {
  const img = join(work, `stock-${sizeMiB}.img`);
  await $`DISK_SIZE_MIB=${sizeMiB} bash ${join(repo, 'test/fixtures/make-stock-image.sh')} ${img} stock`;
  return img;
}

async function sparseCopy(from: string, to: string): Promise<number> {
  rmSync(to, { force: true });
  return (await seconds(() => $`cp --sparse=always ${from} ${to}`))[1];
}

/**
 * Runs a build under /usr/bin/time -v, as `npm run build-image` runs it (launch.mjs, whose bundle the
 * first, untimed build makes), without npm's own start-up: wall seconds and peak RSS in MB.
 */
async function timedBuild(args: string[]): Promise<{ wall: number; rssMB: number; stderr: string }> {
  const [run, wall] = await seconds(async () =>
    $`cd ${repo} && /usr/bin/time -v ${process.execPath} launch.mjs build.ts ${args}`.nothrow(),
  );
  if (run.exitCode !== 0) throw new Error(`build failed: ${run.stderr}`);
  const rss = Number(/Maximum resident set size \(kbytes\): (\d+)/.exec(run.stderr)?.[1] ?? 0);
  return { wall, rssMB: Math.round(rss / 1024), stderr: run.stderr };
}

async function fileWriteRatio(stock: string, sizeMiB: number): Promise<void> {
  const data = join(work, 'payload.bin');
  writeFileSync(data, randomBytes(sizeMiB * MiB));
  const ours = join(work, 'ours.img');
  const native = join(work, 'native.img');
  await sparseCopy(stock, ours);
  await sparseCopy(stock, native);
  const layout = await openImage(ours);
  const [, oursSeconds] = await seconds(() =>
    withRootfs(
      layout,
      async (fs) => {
        const { createReadStream } = await import('node:fs');
        await fs.writeStream('/payload.bin', createReadStream(data, { highWaterMark: 4 * MiB }));
      },
      { writable: true },
    ),
  );
  const [, nativeSeconds] = await seconds(() => $`debugfs -w -R ${`write ${data} /payload.bin`} ${native}?offset=${layout.rootfs.offset}`);
  rows.push(
    `| write a ${sizeMiB} MiB file into the ext4 rootfs | ${oursSeconds.toFixed(2)} s (${(sizeMiB / oursSeconds).toFixed(0)} MiB/s) | native \`debugfs -w write\`: ${nativeSeconds.toFixed(2)} s | ${(oursSeconds / nativeSeconds).toFixed(1)}x |`,
  );
}

/** A bundle in Docker's layout at about the real one's size (~200 MiB of binaries). */
type Bundle = { path: string; sha256: string; files: Record<string, Buffer> };

async function bigBundle(): Promise<Bundle> {
  const files = bundleFiles();
  const grow = (name: string, size: number) => {
    const head = files[name].subarray(0, 64);
    files[name] = Buffer.concat([head, randomBytes(size - 64)]);
  };
  grow('dockerd', 80 * MiB);
  grow('containerd', 50 * MiB);
  grow('docker', 40 * MiB);
  grow('ctr', 20 * MiB);
  grow('runc', 10 * MiB);
  const path = join(work, 'docker-bench.tgz');
  const { sha256 } = await makeBundle(path, files);
  return { path, sha256, files };
}

async function bundleInstall(stock: string, bundle: Bundle): Promise<void> {
  const total = Object.values(bundle.files).reduce((sum, f) => sum + f.length, 0);
  const ours = join(work, 'bundle-ours.img');
  await sparseCopy(stock, ours);
  const layout = await openImage(ours);
  const config = resolveConfig({ docker: { bundle: bundle.path, sha256: bundle.sha256 } });
  const paths = { secrets: join(work, 'secrets'), cache: join(work, 'cache') };
  const [, oursSeconds] = await seconds(() => patchImage(layout, config, [docker], { paths }));
  // The native path: tar extracts the bundle, debugfs writes the files in one session.
  const extracted = join(work, 'extracted');
  mkdirSync(extracted, { recursive: true });
  const [, tarSeconds] = await seconds(() => $`tar -xzf ${bundle.path} -C ${extracted} --strip-components=1`);
  const native = join(work, 'bundle-native.img');
  await sparseCopy(stock, native);
  const commands = join(work, 'debugfs.cmds');
  writeFileSync(
    commands,
    Object.keys(bundle.files)
      .map((name) => `write ${join(extracted, name)} /usr/local/bin/${name}\n`)
      .join(''),
  );
  const [, nativeSeconds] = await seconds(() => $`debugfs -w -f ${commands} ${native}?offset=${layout.rootfs.offset}`);
  const floor = tarSeconds + nativeSeconds;
  rows.push(
    `| install a ${Math.round(total / MiB)} MiB Docker bundle (.tgz streamed, gunzip + tar + ext4) | ${oursSeconds.toFixed(2)} s | native \`tar -xzf\` ${tarSeconds.toFixed(2)} s + \`debugfs -w write\` ${nativeSeconds.toFixed(2)} s | ${(oursSeconds / floor).toFixed(1)}x |`,
  );
}

/**
 * The native floor of a build, as issue 15 defines it: what native tools take for the same work —
 * unpack the bundle, copy the image keeping holes, edit boot.ini with mtools, write the binaries,
 * 10 configs and 2 symlinks in one `debugfs -w` session, check both file systems and sync.
 */
async function nativeFloor(stock: string, layout: ImageLayout, bundle: Bundle): Promise<number> {
  const dir = join(work, 'floor');
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(join(dir, 'extracted'), { recursive: true });
  const img = join(dir, 'floor.img');
  const configs = Array.from({ length: 10 }, (_, i) => join(dir, `bench-${i}.conf`));
  for (const config of configs) writeFileSync(config, `# bench config\nkey=value\n`);
  const commands = join(dir, 'debugfs.cmds');
  writeFileSync(
    commands,
    [
      ...Object.keys(bundle.files).map((name) => `write ${join(dir, 'extracted', name)} /usr/local/bin/${name}`),
      ...configs.map((config, i) => `write ${config} /etc/bench-${i}.conf`),
      'symlink /etc/bench-link-0 /etc/bench-0.conf',
      'symlink /etc/bench-link-1 /etc/bench-1.conf',
      '',
    ].join('\n'),
  );
  const fat = `${img}@@${layout.boot.offset}`;
  const rootfs = `${img}?offset=${layout.rootfs.offset}`;
  const [bootIni, bootFat] = [join(dir, 'boot.ini'), join(dir, 'boot.fat')];
  const [, floor] = await seconds(async () => {
    await $`tar -xzf ${bundle.path} -C ${join(dir, 'extracted')} --strip-components=1`;
    await $`cp --sparse=always ${stock} ${img}`;
    await $`mcopy -n -i ${fat} ::boot.ini ${bootIni}`;
    appendFileSync(bootIni, 'setenv bench "1"\n');
    await $`mcopy -o -i ${fat} ${bootIni} ::boot.ini`;
    await $`debugfs -w -f ${commands} ${rootfs}`;
    await $`e2fsck -fn ${rootfs}`;
    // fsck.fat has no offset option: it checks a sparse copy of the partition, as the tests do.
    await $`dd if=${img} of=${bootFat} bs=1M iflag=skip_bytes,count_bytes skip=${layout.boot.offset} count=${layout.boot.size} conv=sparse status=none`;
    await $`fsck.fat -n ${bootFat}`;
    await $`sync`;
  });
  return floor;
}

const median = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)];

/**
 * Whole builds of the 1 GiB and the 4 GiB image against the native floor, plain (the headline: a
 * plain build does not hash the image) and with --checksum, in rounds (floor, then each build) so
 * that a loaded machine weighs on all of them alike; medians of the rounds, and their ratios.
 */
async function wholeBuilds(images: Record<string, string>, bundle: Bundle, config: string, rounds: number): Promise<void> {
  const args = (input: string) => ['--input', input, '--out', out, '--name', 'bench', '--config', config];
  const kinds: Record<string, string[]> = { '': [], ' with --checksum': ['--checksum'] };
  // The first build makes the secrets (SSH host keys, CA); the measured ones reuse them, as rebuilds do.
  await timedBuild(args(images['1 GiB']));
  const layout = await openImage(images['1 GiB']);
  const floors: number[] = [];
  const builds = Object.entries(kinds).flatMap(([kind, extra]) =>
    Object.entries(images).map(([size, image]) => ({
      size,
      kind,
      args: [...args(image), ...extra],
      runs: [] as Awaited<ReturnType<typeof timedBuild>>[],
    })),
  );
  for (let round = 0; round < rounds; round += 1) {
    floors.push(await nativeFloor(images['1 GiB'], layout, bundle));
    for (const build of builds) build.runs.push(await timedBuild(build.args));
  }
  const floor = median(floors);
  rows.push(
    `| native floor (${rounds} runs; issue 15: tar -xzf, cp --sparse=always, mtools, one debugfs -w session, e2fsck -fn, fsck.fat -n, sync) | | ${floor.toFixed(2)} s (${floors.map((f) => f.toFixed(1)).join(', ')}) | |`,
  );
  const wall: Record<string, number> = {};
  for (const { size, kind, runs } of builds) {
    const label = `${size}${kind}`;
    wall[label] = median(runs.map((r) => r.wall));
    const typical = runs.find((r) => r.wall === wall[label])!;
    const rss = Math.max(...runs.map((r) => r.rssMB));
    rows.push(
      `| whole build${kind}, ${size} stock-like image | ${wall[label].toFixed(2)} s (${runs.map((r) => r.wall.toFixed(1)).join(', ')}), peak RSS ${rss} MB | native floor: ${floor.toFixed(2)} s | **${(wall[label] / floor).toFixed(1)}x** |`,
    );
    rows.push(`| ↳ stages (${label}, the median run) | ${/time: .*/.exec(typical.stderr)?.[0] ?? ''} | | |`);
  }
  for (const kind of Object.keys(kinds)) {
    const [big, small] = [wall[`4 GiB${kind}`], wall[`1 GiB${kind}`]];
    rows.push(
      `| 4 GiB build${kind} against the 1 GiB build${kind} (same content) | ${big.toFixed(2)} s vs ${small.toFixed(2)} s | | **${(big / small).toFixed(2)}x** |`,
    );
  }
}

/**
 * A --release build against its floor: a sparse copy plus `xz -T0` of the same output. Both take
 * minutes, so load moves them apart: two rounds in opposite order (build then floor, floor then
 * build), each side's mean compared, so neither always runs in the quieter slot.
 */
async function releaseBuild(stock: string, config: string): Promise<void> {
  const build = () => timedBuild(['--input', stock, '--out', out, '--name', 'bench', '--config', config, '--release']);
  const floor = async () => {
    const copy = await sparseCopy(stock, join(work, 'floor.img'));
    const [, xzSeconds] = await seconds(() => $`xz -T0 -6 -c ${join(out, 'bench.img')} >/dev/null`);
    return copy + xzSeconds;
  };
  const first = await build();
  const floors = [await floor(), await floor()];
  const second = await build();
  const [builds, floorMean] = [[first.wall, second.wall], (floors[0] + floors[1]) / 2];
  const buildMean = (builds[0] + builds[1]) / 2;
  const shown = (values: number[]) => values.map((v) => v.toFixed(1)).join(', ');
  rows.push(
    `| \`--release\` build, 1 GiB stock-like image (2 rounds) | ${buildMean.toFixed(2)} s (${shown(builds)}), peak RSS ${Math.max(first.rssMB, second.rssMB)} MB | \`cp --sparse=always\` + \`xz -T0\` of the output: ${floorMean.toFixed(2)} s (${shown(floors)}) | ${(buildMean / floorMean).toFixed(2)}x |`,
  );
}

/** Seconds of a stage in a build's `time:` line (for a fleet, its total over the boards). */
function stageSeconds(stderr: string, name: string): number {
  return Number(new RegExp(`[:,] ${name} ([\\d.]+)s`).exec(stderr)?.[1] ?? NaN);
}

/** --fleet 3 against three single builds: N boards should cost N patches, not N whole pipelines. */
async function fleetBuild(stock: string, config: string): Promise<void> {
  const fleetOut = join(work, 'out-fleet');
  const args = ['--input', stock, '--out', fleetOut, '--name', 'bench', '--config', config];
  // The first build makes the secrets (SSH host keys, CA); the measured ones reuse them, as rebuilds do.
  await timedBuild(args);
  const single = await timedBuild(args);
  const fleet = await timedBuild([...args, '--fleet', '3']);
  const patch = { single: stageSeconds(single.stderr, 'patch'), fleet: stageSeconds(fleet.stderr, 'patch') };
  rows.push(
    `| \`--fleet 3\`, 1 GiB stock-like image | ${fleet.wall.toFixed(2)} s (patch stage ${patch.fleet.toFixed(1)} s for 3 boards) | ` +
      `3 × single build: ${(3 * single.wall).toFixed(2)} s; 3 × single patch stage: ${(3 * patch.single).toFixed(1)} s | ${(fleet.wall / (3 * single.wall)).toFixed(2)}x |`,
  );
  rows.push(`| ↳ stages (--fleet 3) | ${/time: .*/.exec(fleet.stderr)?.[0] ?? ''} | | |`);
  rmSync(fleetOut, { recursive: true, force: true });
}

/**
 * Peak memory of a fleet against its number of boards: --fleet 12 within 1.3x of --fleet 2. Every
 * board is patched in the same process, so anything kept per board (or leaked per board, as the
 * ext2fs binding's readdir once did in its fixed WASM heap) shows here.
 */
async function fleetMemory(stock: string, config: string): Promise<void> {
  const peak = async (boards: number) => {
    const out = join(work, `out-fleet-memory-${boards}`);
    const build = await timedBuild(['--input', stock, '--out', out, '--name', 'bench', '--config', config, '--fleet', String(boards)]);
    rmSync(out, { recursive: true, force: true });
    return build.rssMB;
  };
  const [two, twelve] = [await peak(2), await peak(12)];
  rows.push(
    `| peak RSS, \`--fleet 12\` against \`--fleet 2\` (target ≤ 1.3x) | ${twelve} MB | ${two} MB | ${(twelve / two).toFixed(2)}x |`,
  );
}

async function main(): Promise<void> {
  const small = await makeStockLike(1024);
  const big = await makeStockLike(4096);
  const bundle = await bigBundle();
  const config = join(work, 'config.json');
  writeFileSync(config, JSON.stringify({ docker: { bundle: bundle.path, sha256: bundle.sha256 } }));
  // `npm run bench -- release` measures the --release comparison alone (it takes the longest).
  const releaseOnly = process.argv.includes('release');
  if (!releaseOnly) {
    await wholeBuilds({ '1 GiB': small, '4 GiB': big }, bundle, config, 3);
    await fileWriteRatio(small, 200);
    await bundleInstall(small, bundle);
  }
  await releaseBuild(small, config);
  if (!releaseOnly) {
    await fleetBuild(small, config);
    await fleetMemory(small, config);
  }
  const allocated = (p: string) => Math.round((statSync(p).blocks * 512) / MiB);
  process.stdout.write(
    `Machine: ${cpus().length} × ${cpus()[0]?.model ?? 'cpu'}, ${Math.round(totalmem() / 2 ** 30)} GiB RAM, Node ${process.version}, load average ${loadavg()
      .map((l) => l.toFixed(1))
      .join(' ')} at the end; ` +
      `stock-like images hold ${allocated(small)} MiB (1 GiB) and ${allocated(big)} MiB (4 GiB) of data.\n\n` +
      `| what | this tool | floor | ratio |\n|---|---|---|---|\n${rows.join('\n')}\n`,
  );
}

main()
  .catch((error: unknown) => {
    process.stderr.write(`bench failed: ${String((error as Error)?.stack ?? error)}\n`);
    process.exitCode = 1;
  })
  .finally(() => rmSync(work, { recursive: true, force: true }));
