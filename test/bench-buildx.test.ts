/*
 * The host kit's bench-buildx.sh: its checks, its parsing of BuildKit's plain progress output
 * (test/fixtures/buildx-plain/) and its report, run against stand-ins for docker, date and uname.
 */
import { spawnSync } from 'node:child_process';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { fleetConfigs } from '../src/config/fleet.js';
import { resolveConfig } from '../src/config/load.js';
import { hostKitDirOf, writeHostKit } from '../src/host-kit/host-kit.js';
import { BASH, fakeBin, runKitScript } from './kit-helpers.js';
import { REPO } from './support/cli.js';
import { tempDir } from './support/images.js';

const TRANSCRIPTS = join(REPO, 'test/fixtures/buildx-plain');

let kit: string;
let script: string;
beforeAll(async () => {
  const out = await tempDir();
  const pending = await writeHostKit(out, fleetConfigs(resolveConfig({ name: 'fleet' }), 2), join(out, 'secrets'), 'fleet');
  await pending.commit();
  kit = hostKitDirOf(out);
  script = join(kit, 'bench-buildx.sh');
});

/** step_seconds from the script, sourced, on `input`: its output and exit status. */
function stepSeconds(marker: string, input: string) {
  const run = spawnSync(BASH, ['--norc', '-c', 'source "$1"; step_seconds "$2"', 'bash', script, marker], { input, encoding: 'utf8' });
  return { seconds: run.stdout.trim(), status: run.status };
}

describe('bench-buildx.sh', () => {
  it('passes bash -n and shellcheck, and ships a Dockerfile, Makefile and C program that build it', async () => {
    const syntax = spawnSync('bash', ['-n', script], { encoding: 'utf8' });
    expect(syntax.stderr).toBe('');
    const check = spawnSync('shellcheck', [script], { encoding: 'utf8' });
    expect(check.error).toBeUndefined();
    expect(check.stdout + check.stderr).toBe('');
    expect(check.status).toBe(0);
    const dockerfile = await readFile(join(kit, 'bench/Dockerfile'), 'utf8');
    // The two step headers the script times are the Dockerfile's own instructions.
    expect(dockerfile).toMatch(/^RUN apk add --no-cache build-base$/m);
    expect(dockerfile).toMatch(/^RUN make -j"\$\(nproc\)" UNITS="\$UNITS" && \.\/bench$/m);
  });

  it("the workload compiles without warnings and runs with this machine's make and cc", async () => {
    const dir = await tempDir();
    for (const file of ['Makefile', 'bench.c']) await writeFile(join(dir, file), await readFile(join(kit, 'bench', file)));
    const make = spawnSync('make', ['-j4', 'UNITS=3', 'CFLAGS=-O1 -Wall -Wextra -Werror'], { cwd: dir, encoding: 'utf8' });
    expect(make.error, 'make and gcc must be installed (.ci/run installs them)').toBeUndefined();
    expect(make.stderr).toBe('');
    expect(make.status).toBe(0);
    const run = spawnSync(join(dir, 'bench'), { encoding: 'utf8' });
    expect(run.stdout).toMatch(/^bench: 3 units ran, checksum [0-9a-f]{8}\n$/);
  });

  it("reads the toolchain and compile steps' times from recorded plain progress output", async () => {
    const device = await readFile(join(TRANSCRIPTS, 'device.txt'), 'utf8');
    const emulated = await readFile(join(TRANSCRIPTS, 'emulated.txt'), 'utf8');
    expect(stepSeconds('RUN apk add', device)).toEqual({ seconds: '49.7', status: 0 });
    expect(stepSeconds('RUN make', device)).toEqual({ seconds: '40.4', status: 0 });
    // Here the apk step's output is interrupted by another step and its header comes again.
    expect(stepSeconds('RUN apk add', emulated)).toEqual({ seconds: '71.3', status: 0 });
    expect(stepSeconds('RUN make', emulated)).toEqual({ seconds: '212.6', status: 0 });
  });

  it('finds no time for a step that failed, was cached or is not there', () => {
    const failed =
      '#9 [compile 3/3] RUN make -j"$(nproc)"\n#9 2.104 bench.c:1:1: error\n#9 ERROR: process "/bin/sh -c make" did not complete successfully: exit code: 2\n#10 DONE 0.1s\n';
    expect(stepSeconds('RUN make', failed).status).not.toBe(0);
    expect(stepSeconds('RUN make', '#9 [compile 3/3] RUN make -j"$(nproc)"\n#9 CACHED\n').status).not.toBe(0);
    expect(stepSeconds('RUN make', '#1 [internal] load build definition from Dockerfile\n#1 DONE 0.1s\n').status).not.toBe(0);
    // A log line that mentions the step is not its header.
    expect(stepSeconds('RUN make', '#6 1.0 RUN make later\n#6 DONE 3.0s\n#9 [compile 3/3] RUN make\n#9 DONE 7.5s\n')).toEqual({
      seconds: '7.5',
      status: 0,
    });
  });
});

describe('bench-buildx.sh, run', () => {
  /**
   * docker: the device's builder answers unless $UNREACHABLE names it, the host's lists
   * $PLATFORMS, and a build prints the transcript of its builder (FAIL=<builder> fails it).
   */
  const DOCKER = `
echo "docker $*" >>"$STATE/log"
case "$1 $2" in
  "buildx version") exit 0 ;;
  "context show") echo default ;;
  "buildx inspect") [ "$4" != "\${UNREACHABLE:-}" ] || exit 1; printf 'Name: %s\\nPlatforms: %s\\n' "$4" "$PLATFORMS" ;;
  "buildx build")
    [ "$4" != "\${FAIL:-}" ] || { echo "#9 ERROR: process did not complete successfully"; exit 1; }
    if [ "$4" = default ]; then cat "$TRANSCRIPTS/emulated.txt"; else cat "$TRANSCRIPTS/device.txt"; fi ;;
  *) echo "unexpected: docker $*" >&2; exit 2 ;;
esac`;
  /** date: the next line of $STATE/clock at each call. */
  const DATE = 'n=$(($(cat "$STATE/calls" 2>/dev/null || echo 0) + 1)); echo "$n" >"$STATE/calls"; sed -n "${n}p" "$STATE/clock"';

  /** `binfmt`: the kernel's qemu-aarch64 entry; null, none. */
  async function run(
    env: Record<string, string> = {},
    binfmt: string | null = 'enabled\ninterpreter /usr/bin/qemu-aarch64-static\nflags: F\n',
  ) {
    const state = await tempDir();
    const binfmtDir = await tempDir();
    if (binfmt !== null) await writeFile(join(binfmtDir, 'qemu-aarch64'), binfmt);
    // Device build from 1000.0 to 1096.8 s, emulated build from 1100.0 to 1391.2 s.
    await writeFile(join(state, 'clock'), '1000.000000000\n1096.800000000\n1100.000000000\n1391.200000000\n');
    await mkdir(join(state, 'tmp'));
    const bin = await fakeBin({ docker: DOCKER, date: DATE, uname: 'echo "${ARCH:-x86_64}"' }, ['awk', 'head', 'tail', 'sed', 'mktemp']);
    const result = runKitScript(script, bin, {
      STATE: state,
      TRANSCRIPTS,
      TMPDIR: join(state, 'tmp'),
      BINFMT_MISC: binfmtDir,
      PLATFORMS: 'linux/amd64, linux/386',
      ...env,
    });
    return { ...result, log: await readFile(join(state, 'log'), 'utf8').catch(() => '') };
  }

  it('builds on the device and under emulation without cache, and prints both times and the ratios', async () => {
    const result = await run();
    expect(result.stderr).toBe('');
    expect(result.status).toBe(0);
    const table = result.stdout
      .split('\n')
      .filter((line) => /^(device|emulated)/.test(line))
      .map((line) => line.trim().split(/\s{2,}/));
    expect(table).toEqual([
      ['device (fleet)', '96.8 s', '49.7 s', '40.4 s'],
      ['emulated (default)', '291.2 s', '71.3 s', '212.6 s'],
      ['emulated / device', '3.0x', '1.4x', '5.3x'],
    ]);
    const builds = result.log.split('\n').filter((call) => call.startsWith('docker buildx build'));
    const context = join(kit, 'bench');
    const flags = `--platform linux/arm64 --no-cache --progress=plain --build-arg BASE=alpine:3.21 --build-arg UNITS=32 --output type=cacheonly ${context}`;
    expect(builds).toEqual([`docker buildx build --builder fleet ${flags}`, `docker buildx build --builder default ${flags}`]);
  });

  it("uses the builder's platforms when the host has no binfmt_misc entry (Docker Desktop)", async () => {
    const result = await run({ PLATFORMS: 'linux/amd64, linux/arm64, linux/arm/v7' }, null);
    expect(result.stderr).toBe('');
    expect(result.status).toBe(0);
  });

  it('says so when this host cannot emulate arm64', async () => {
    for (const binfmt of [null, 'disabled\ninterpreter /usr/bin/qemu-aarch64-static\n']) {
      const result = await run({}, binfmt);
      expect(result.status).not.toBe(0);
      expect(result.stderr).toMatch(
        /^bench-buildx\.sh: this host cannot run arm64 programs: no enabled .*\/qemu-aarch64 and builder default lists no linux\/arm64\. Install QEMU's binfmt handlers \(docker run --privileged --rm tonistiigi\/binfmt --install arm64/,
      );
      expect(result.log).not.toMatch(/buildx build/);
    }
  });

  it('says so when the device builder does not start, naming the devices to check', async () => {
    const result = await run({ UNREACHABLE: 'fleet' });
    expect(result.status).not.toBe(0);
    expect(result.stderr.trim()).toBe(
      'bench-buildx.sh: the device builder fleet does not start: run ./setup-buildx.sh first, and check that the device answers (ping 10.0.0.2 10.0.1.2)',
    );
    expect(result.log).not.toMatch(/buildx build/);
  });

  it('says so on an arm64 host, where there is nothing to emulate', async () => {
    const result = await run({ ARCH: 'aarch64' });
    expect(result.status).not.toBe(0);
    expect(result.stderr).toMatch(/^bench-buildx\.sh: this host is arm64 itself/);
  });

  it('stops at a failed build with the end of its log, printing no times', async () => {
    const result = await run({ FAIL: 'fleet' });
    expect(result.status).not.toBe(0);
    expect(result.stderr).toMatch(
      /#9 ERROR: process did not complete successfully\nbench-buildx\.sh: the build on fleet failed \(above: the end of its log; all of it: .*\/device\.log\)/,
    );
    expect(result.stdout).not.toMatch(/emulated/);
  });
});
