import { execFile as execFileCallback } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { CLOCK_FILE, CLOCK_FLOOR_SCRIPT, CLOCK_FLOOR_UNIT, clock } from '../../src/steps/clock.js';
import { debugfs, debugfsCat, debugfsStat } from '../support/debugfs.js';
import { e2fsckClean } from '../support/fsck.js';
import { patchFixture } from './patch-fixture.js';
import { appliedOn } from './probe.js';

const execFile = promisify(execFileCallback);

/** The inode's mtime in seconds, as debugfs prints it (`mtime: 0x...`). */
async function mtimeOf(img: string, file: string): Promise<number> {
  const { stdout, error } = await debugfs(img, `stat "${file}"`);
  if (error) throw new Error(error);
  const match = /mtime: (0x[0-9a-f]+)/.exec(stdout);
  if (!match) throw new Error(`no mtime in:\n${stdout}`);
  return Number(match[1]);
}

afterEach(() => {
  vi.restoreAllMocks();
});

describe('clock step', () => {
  it("writes timesyncd's clock file stamped with the build's time, and an early unit that enforces it", async () => {
    const before = Math.floor(Date.now() / 1000);
    const { img } = await patchFixture([clock]);
    const after = Math.ceil(Date.now() / 1000);
    expect(await debugfsStat(img, CLOCK_FILE)).toMatchObject({ type: 'regular', mode: 0o644, uid: 0, gid: 0 });
    const floor = await mtimeOf(img, CLOCK_FILE);
    expect(floor).toBeGreaterThanOrEqual(before);
    expect(floor).toBeLessThanOrEqual(after);
    expect(await debugfsStat(img, CLOCK_FLOOR_SCRIPT)).toMatchObject({ type: 'regular', mode: 0o755, uid: 0, gid: 0 });
    expect(await debugfsStat(img, `/etc/systemd/system/sysinit.target.wants/${CLOCK_FLOOR_UNIT}`)).toMatchObject({
      type: 'symlink',
      target: `/etc/systemd/system/${CLOCK_FLOOR_UNIT}`,
    });
    const unit = await debugfsCat(img, `/etc/systemd/system/${CLOCK_FLOOR_UNIT}`);
    expect(unit).toContain('DefaultDependencies=no\n');
    expect(unit).toMatch(/^Before=.*\bsysinit\.target\b.*\btime-set\.target\b.*\bsystemd-timesyncd\.service\b/m);
    expect(unit).toContain(`ExecStart=${CLOCK_FLOOR_SCRIPT}\n`);
    expect(await e2fsckClean(img)).toMatchObject({ ok: true });
  });

  it('stamps the clock file with SOURCE_DATE_EPOCH when the build pins the clock to it', async () => {
    const epoch = 1_700_000_000;
    vi.spyOn(Date, 'now').mockReturnValue(epoch * 1000);
    const { img } = await patchFixture([clock]);
    expect(await mtimeOf(img, CLOCK_FILE)).toBe(epoch);
  });

  it('its script is shellcheck-clean POSIX sh reading the clock file', async () => {
    const { img, dir } = await patchFixture([clock]);
    const script = await debugfsCat(img, CLOCK_FLOOR_SCRIPT);
    expect(script).toContain(`stat -c %Y ${CLOCK_FILE}`);
    const file = path.join(dir, 'clock-floor');
    await writeFile(file, script);
    const check = await execFile('shellcheck', ['-s', 'sh', file]).catch((error: { stdout: string }) => error);
    expect(check.stdout).toBe('');
  });

  it('reports a stock image as not applied and a patched one as applied', async () => {
    const stock = await patchFixture([]);
    expect(await appliedOn(clock, stock.img)).toBe(false);
    const patched = await patchFixture([clock]);
    expect(await appliedOn(clock, patched.img)).toBe(true);
  });
});
