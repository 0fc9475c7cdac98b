import { describe, expect, it } from 'vitest';
import type { Step } from '../../src/engine/step.js';
import { UserError } from '../../src/errors.js';
import { nographics } from '../../src/steps/nographics.js';
import { fsckFatClean } from '../support/fsck.js';
import { mtypeBoot } from '../support/mtools.js';
import { referenceText } from '../support/reference.js';
import { changedLines, lineIndex } from '../text-diff.js';
import { patchFixture } from './patch-fixture.js';
import { appliedOn } from './probe.js';

describe('nographics step', () => {
  it('on a C2 image changes exactly the nographics line of boot.ini and keeps it across bootini upgrades', async () => {
    const { img } = await patchFixture([nographics]);
    const stock = referenceText('odroid-c2/boot.ini');
    const bootIni = await mtypeBoot(img, 'boot.ini');
    expect(changedLines(stock, bootIni)).toEqual([[lineIndex(stock, /^setenv nographics /), 'setenv nographics "1"']]);
    expect(bootIni.split('\n')[0]).toBe('ODROIDC2-UBOOT-CONFIG');

    const stockDefault = referenceText('odroid-c2/boot.ini.default');
    const bootIniDefault = await mtypeBoot(img, 'boot.ini.default');
    expect(changedLines(stockDefault, bootIniDefault)).toEqual([[lineIndex(stockDefault, /^#nographics=/), 'nographics=1']]);

    expect(await fsckFatClean(img)).toMatchObject({ ok: true });
    expect(await appliedOn(nographics, img)).toBe(true);
  });

  it('patching again leaves both files byte-identical', async () => {
    const first = await patchFixture([nographics]);
    const once = [await mtypeBoot(first.img, 'boot.ini'), await mtypeBoot(first.img, 'boot.ini.default')];
    await patchFixture([nographics], {}, { img: first.img });
    expect([await mtypeBoot(first.img, 'boot.ini'), await mtypeBoot(first.img, 'boot.ini.default')]).toEqual(once);
    expect(await fsckFatClean(first.img)).toMatchObject({ ok: true });
  });

  it('on a config.ini board sets display_autodetect=false in [generic] and leaves boot.ini alone', async () => {
    const { img } = await patchFixture([nographics], {}, { variant: 'c4' });
    const stock = referenceText('odroid-c4/config.ini');
    const configIni = await mtypeBoot(img, 'config.ini');
    const changed = changedLines(stock, configIni);
    expect(changed).toEqual([[lineIndex(stock, /^display_autodetect=/), 'display_autodetect=false']]);
    // The key must be in [generic], the section the C4 boot.ini imports with `ini generic`.
    const sectionOf = configIni
      .split('\n')
      .slice(0, changed[0][0])
      .filter((line) => /^\s*\[/.test(line))
      .at(-1);
    expect(sectionOf?.trim()).toBe('[generic]');
    expect(await mtypeBoot(img, 'boot.ini')).toBe(referenceText('odroid-c4/boot.ini'));
    expect(await fsckFatClean(img)).toMatchObject({ ok: true });
    expect(await appliedOn(nographics, img)).toBe(true);
  });

  it('reports a stock image as not applied', async () => {
    const { img } = await patchFixture([]);
    expect(await appliedOn(nographics, img)).toBe(false);
  });

  it('refuses a boot partition with neither boot.ini nor config.ini, naming what it found', async () => {
    const removeBootConfig: Step = {
      name: 'remove-boot-config',
      summary: 'test: make the FAT look like some other board',
      plan: async () => [
        { op: 'remove', on: 'boot', path: '/boot.ini' },
        { op: 'remove', on: 'boot', path: '/boot.ini.default' },
      ],
      applied: async () => false,
    };
    const attempt = patchFixture([removeBootConfig, nographics]);
    await expect(attempt).rejects.toThrow(UserError);
    await expect(attempt).rejects.toThrow(/neither boot\.ini nor config\.ini \(found: .*Image.*\)/);
  });
});
