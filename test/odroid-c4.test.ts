/**
 * HardKernel C4/HC4/N2+ images (boot.ini + config.ini, HardKernel's real files in the fixture)
 * through the real build, with NetworkManager as their Ubuntu minimal images have it.
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { getIniKey } from '../src/formats/ini.js';
import { debugfsCat } from './support/debugfs.js';
import { e2fsckClean, fsckFatClean } from './support/fsck.js';
import { stockImage, tempDir } from './support/images.js';
import { mtypeBoot } from './support/mtools.js';
import { referenceText } from './support/reference.js';
import { buildWithStandInBundle } from './support/stand-in-build.js';

const C4 = { network: 'networkmanager' } as const;

async function build(input: string, config: Record<string, unknown> = {}, flags: string[] = []) {
  const out = await tempDir();
  return { run: await buildWithStandInBundle(input, out, 'c4', config, flags), out, img: join(out, 'c4.img') };
}

describe('a build of a C4 image', () => {
  let built: Awaited<ReturnType<typeof build>>;
  beforeAll(async () => {
    built = await build(await stockImage('c4', C4));
    expect(built.run.code).toBe(0);
  });

  it('names the board and says it needs its DC supply', () => {
    expect(built.run.stdout).toMatch(/^ {2}board +ODROID-C4, HC4, N2\+ \(.*\); no USB power profile: these boards need their DC supply/m);
    // The kit says it too, where the cable goes in; and no power warning, which is for USB-powered boards.
    expect(built.run.stdout).not.toMatch(/warning +power\.profile/);
  });

  it('gives a host kit that says the board needs its own supply, and leaves the data image to the device', async () => {
    const readme = await readFile(join(built.out, 'host/README.md'), 'utf8');
    expect(readme).toContain('It is its only network; power it from its own\nsupply');
    expect(readme).not.toContain('It powers the board');
    expect(readme).not.toContain('mkfs.btrfs');
  });

  it('config.ini: display_autodetect=false in [generic]; boot.ini boots the overlay read-only; g_ether; usb0 through NetworkManager', async () => {
    const configIni = await mtypeBoot(built.img, 'config.ini');
    expect(getIniKey(configIni, 'generic', 'display_autodetect')).toBe('false');
    expect(getIniKey(configIni, 'generic', 'maxcpus')).toBe(getIniKey(referenceText('odroid-c4/config.ini'), 'generic', 'maxcpus'));
    const bootIni = await mtypeBoot(built.img, 'boot.ini');
    expect(bootIni).toMatch(/^setenv bootargs ".* ro .*init=\/sbin\/overlay-init"/m);
    expect(await debugfsCat(built.img, '/etc/modprobe.d/usb-gadget.conf')).toMatch(/^options g_ether dev_addr=/m);
    expect(built.run.stdout).toMatch(/^ {2}usb0 +networkmanager from /m);
    expect(await e2fsckClean(built.img)).toMatchObject({ ok: true });
    expect(await fsckFatClean(built.img)).toMatchObject({ ok: true });
  });

  it('rebuilt from its own output, changes no boot file', async () => {
    const again = await build(built.img);
    expect(again.run.code).toBe(0);
    for (const file of ['boot.ini', 'config.ini']) expect(await mtypeBoot(again.img, file)).toBe(await mtypeBoot(built.img, file));
  });

  it('refuses a USB power profile in one line; --fleet 2 builds two', async () => {
    const usb = await build(await stockImage('c4', C4), { power: { profile: 'usb3-0.9A' } });
    expect(usb.run.code).not.toBe(0);
    expect(usb.run.stderr).toMatch(
      /^error: power\.profile "usb3-0\.9A" .*ODROID-C4, HC4, N2\+: no USB power profile: these boards need their DC supply/m,
    );
    const fleet = await build(await stockImage('c4', C4), {}, ['--fleet', '2']);
    expect(fleet.run.code).toBe(0);
    for (const n of [1, 2]) expect(await mtypeBoot(join(fleet.out, `c4-${n}.img`), 'boot.ini')).toContain('init=/sbin/overlay-init');
  });
});
