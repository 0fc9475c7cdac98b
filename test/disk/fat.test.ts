import { readFile } from 'node:fs/promises';
import { describe, expect, it } from 'vitest';
import { withBootPartition } from '../../src/image/fat.js';
import { openImage } from '../../src/image/open.js';
import { fsckFatClean } from '../support/fsck.js';
import { copyOfStockImage, tempDir } from '../support/images.js';
import { mtypeBoot } from '../support/mtools.js';
import { referencePath } from '../support/reference.js';

describe('FAT boot partition access (js-fatfs)', () => {
  for (const variant of ['stock', 'fat16'] as const) {
    it(`reads the real boot.ini and writes long names that mtools and fsck.fat accept (${variant})`, async () => {
      const img = await copyOfStockImage(variant, await tempDir());
      const layout = await openImage(img);
      const original = await readFile(referencePath('odroid-c2/boot.ini'));
      await withBootPartition(
        layout,
        async (fs) => {
          expect(await fs.readFile('/boot.ini')).toEqual(original);
          await fs.mkdirp('/overlays/user');
          await fs.writeFile('/overlays/user/A long file name.txt', 'long\n');
          await fs.writeFile('/boot.ini', 'ODROIDC2-UBOOT-CONFIG\nshort\n');
          expect(await fs.readdir('/overlays/user')).toEqual(['A long file name.txt']);
        },
        { writable: true },
      );
      expect(await mtypeBoot(img, '/overlays/user/A long file name.txt')).toBe('long\n');
      expect(await mtypeBoot(img, '/boot.ini')).toBe('ODROIDC2-UBOOT-CONFIG\nshort\n');
      const fsck = await fsckFatClean(img);
      expect(fsck.output).not.toMatch(/differ/i);
      expect(fsck.ok).toBe(true);
    });
  }

  it('a read-only scope refuses writes', async () => {
    const img = await copyOfStockImage('stock', await tempDir());
    const layout = await openImage(img);
    await expect(withBootPartition(layout, (fs) => fs.writeFile('/x', 'y'))).rejects.toThrow(/FAT open \/x/);
  });
});
