import { describe, expect, it } from 'vitest';
import { UserError } from '../../src/errors.js';
import { openImage } from '../../src/image/open.js';
import { ROOT_UUID, stockImage } from '../support/images.js';

describe('finding the partitions', () => {
  it("finds HardKernel's layout: FAT32 p1 at sector 2048, ext4 p2 at sector 264192 named by boot.ini", async () => {
    const layout = await openImage(await stockImage('stock'));
    expect(layout.boot).toMatchObject({ number: 1, offset: 2048 * 512, size: 262144 * 512, mbrType: 0x0c, fat: 'FAT32' });
    expect(layout.rootfs).toMatchObject({ number: 2, offset: 264192 * 512, uuid: ROOT_UUID });
  });

  it('reads a FAT16 boot partition', async () => {
    const layout = await openImage(await stockImage('fat16'));
    expect(layout.boot.fat).toBe('FAT16');
  });

  const refusals: [string, RegExp][] = [
    ['gpt', /GPT partition table/],
    ['zero', /no partition table/],
    ['no-ext4', /no ext4 root partition/],
  ];
  for (const [variant, message] of refusals) {
    it(`refuses a ${variant} image with a clear message`, async () => {
      const img = await stockImage(variant as 'gpt');
      const error = await openImage(img).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(UserError);
      expect((error as Error).message).toMatch(message);
      expect((error as Error).message).not.toContain('\n');
    });
  }
});
