/**
 * A build is planned whole before it is applied: each step must still see what the steps before
 * it change. Two stand-in steps over the stock fixture: the second reads what the first planned.
 */
import { describe, expect, it } from 'vitest';
import { resolveConfig } from '../src/config/load.js';
import { describeOperation, type Operation } from '../src/engine/operations.js';
import { planImage } from '../src/engine/patch.js';
import type { ImageView, Step } from '../src/engine/step.js';
import { openImage } from '../src/image/open.js';
import { copyOfStockImage, tempDir } from './support/images.js';

const step = (name: string, plan: (image: ImageView) => Promise<Operation[]>): Step => ({
  name,
  summary: name,
  plan: ({ image }) => plan(image),
  applied: async () => false,
});

async function planOnStock(steps: Step[], image?: { img: string; dir: string }) {
  const dir = image?.dir ?? (await tempDir());
  const img = image?.img ?? (await copyOfStockImage('stock', dir));
  return planImage(await openImage(img), resolveConfig({}), steps, { paths: { secrets: `${dir}/secrets`, cache: dir } });
}

describe('planning a build whole', () => {
  it('shows a later step the files, edits, links and removals of the steps before it, on both partitions', async () => {
    const seen: Record<string, unknown> = {};
    const first = step('first', async () => [
      { op: 'write', on: 'rootfs', path: '/etc/planned/new.conf', content: 'one\n' },
      { op: 'edit', on: 'rootfs', path: '/etc/hostname', change: { change: 'append-line', line: 'two' } },
      { op: 'symlink', on: 'rootfs', path: '/etc/planned/link', target: 'new.conf' },
      { op: 'remove', on: 'rootfs', path: '/etc/fstab' },
      { op: 'write', on: 'boot', path: '/Planned.TXT', content: 'fat\n' },
      { op: 'secret', on: 'rootfs', path: '/etc/planned/key', secret: 'ssh/ssh_host_ed25519_key', mode: 0o600 },
    ]);
    const second = step('second', async (image) => {
      seen.written = await image.readText('rootfs', '/etc/planned/new.conf');
      seen.edited = await image.readText('rootfs', '/etc/hostname');
      seen.link = await image.readlink('rootfs', '/etc/planned/link');
      seen.listing = (await image.readdir('rootfs', '/etc/planned')).sort();
      seen.removed = await image.lstat('rootfs', '/etc/fstab');
      seen.listed = (await image.readdir('rootfs', '/etc')).includes('fstab');
      seen.fat = await image.readText('boot', '/planned.txt');
      seen.secret = await image.lstat('rootfs', '/etc/planned/key');
      return [];
    });
    const dir = await tempDir();
    const stock = { dir, img: await copyOfStockImage('stock', dir) };
    const plan = await planOnStock([first, second], stock);
    expect(seen).toEqual({
      written: 'one\n',
      edited: 'odroid\ntwo\n',
      link: 'new.conf',
      listing: ['key', 'link', 'new.conf'],
      removed: undefined,
      listed: false,
      fat: 'fat\n',
      secret: expect.objectContaining({ type: 'file', mode: 0o600 }),
    });
    expect(plan.planned[0].operations.map(describeOperation)).toContain('remove  rootfs:/etc/fstab');
    // Planning wrote nothing: a plan of the same image without the first step still sees fstab.
    const alone = step('alone', async (image) => {
      seen.fstabAfter = (await image.lstat('rootfs', '/etc/fstab'))?.type;
      return [];
    });
    await planOnStock([alone], stock);
    expect(seen.fstabAfter).toBe('file');
  });

  it('refuses to let a plan read what only applying makes (a secret)', async () => {
    const first = step('first', async () => [{ op: 'secret', on: 'rootfs', path: '/etc/key', secret: 'tls/ca.pem' }]);
    const second = step('second', async (image) => {
      await image.read('rootfs', '/etc/key');
      return [];
    });
    await expect(planOnStock([first, second])).rejects.toThrow('rootfs:/etc/key is written while the plan is applied');
  });
});
