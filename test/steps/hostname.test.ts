import { describe, expect, it } from 'vitest';
import type { Step } from '../../src/engine/step.js';
import { setHostsSelfName } from '../../src/formats/hosts.js';
import { hostname } from '../../src/steps/hostname.js';
import { debugfsCat, debugfsStat } from '../support/debugfs.js';
import { e2fsckClean } from '../support/fsck.js';
import { patchFixture } from './patch-fixture.js';
import { appliedOn } from './probe.js';

const STOCK_HOSTS = `127.0.0.1	localhost
127.0.1.1	odroid

# The following lines are desirable for IPv6 capable hosts
::1     ip6-localhost ip6-loopback
fe00::0 ip6-localnet
ff00::0 ip6-mcastprefix
ff02::1 ip6-allnodes
ff02::2 ip6-allrouters
`;

const writeHosts = (content: string | undefined): Step => ({
  name: 'set-hosts',
  summary: 'test: give the image another /etc/hosts',
  plan: async () => [
    content === undefined
      ? { op: 'remove', on: 'rootfs', path: '/etc/hosts' }
      : { op: 'write', on: 'rootfs', path: '/etc/hosts', content, mode: 0o644, uid: 0, gid: 0 },
  ],
  applied: async () => false,
});

describe('hostname step', () => {
  it('names the device in /etc/hostname and on the 127.0.1.1 line of /etc/hosts, nothing else', async () => {
    const { img } = await patchFixture([hostname], { hostname: 'pocket-builder' });
    expect(await debugfsCat(img, '/etc/hostname')).toBe('pocket-builder\n');
    expect(await debugfsStat(img, '/etc/hostname')).toMatchObject({ type: 'regular', mode: 0o644, uid: 0, gid: 0 });
    expect(await debugfsCat(img, '/etc/hosts')).toBe(STOCK_HOSTS.replace('127.0.1.1\todroid', '127.0.1.1\tpocket-builder'));
    expect(await debugfsStat(img, '/etc/hosts')).toMatchObject({ mode: 0o644, uid: 0, gid: 0 });
    expect(await e2fsckClean(img)).toMatchObject({ ok: true });
  });

  it('defaults to the config name', async () => {
    const { img } = await patchFixture([hostname], { name: 'c2-builder' });
    expect(await debugfsCat(img, '/etc/hostname')).toBe('c2-builder\n');
    expect(await debugfsCat(img, '/etc/hosts')).toContain('\n127.0.1.1\tc2-builder\n');
  });

  it('patching again, or with another name, keeps one 127.0.1.1 line', async () => {
    const { img } = await patchFixture([hostname], { hostname: 'first' });
    await patchFixture([hostname], { hostname: 'first' }, { img });
    const once = await debugfsCat(img, '/etc/hosts');
    expect(once).toBe(STOCK_HOSTS.replace('\todroid', '\tfirst'));
    await patchFixture([hostname], { hostname: 'second' }, { img });
    expect(await debugfsCat(img, '/etc/hosts')).toBe(STOCK_HOSTS.replace('\todroid', '\tsecond'));
    expect(await debugfsCat(img, '/etc/hostname')).toBe('second\n');
    expect(await e2fsckClean(img)).toMatchObject({ ok: true });
  });

  it('adds the 127.0.1.1 line after localhost when the image has none', async () => {
    const { img } = await patchFixture([writeHosts('127.0.0.1 localhost\n::1 localhost\n'), hostname], { hostname: 'pocket' });
    expect(await debugfsCat(img, '/etc/hosts')).toBe('127.0.0.1 localhost\n127.0.1.1\tpocket\n::1 localhost\n');
  });

  it('writes a whole /etc/hosts when the image has none', async () => {
    const { img } = await patchFixture([writeHosts(undefined), hostname], { hostname: 'pocket' });
    expect(await debugfsCat(img, '/etc/hosts')).toBe(STOCK_HOSTS.replace('\todroid', '\tpocket'));
    expect(await debugfsStat(img, '/etc/hosts')).toMatchObject({ type: 'regular', mode: 0o644, uid: 0, gid: 0 });
  });

  it('reports the stock name as not applied and any other as applied', async () => {
    const stock = await patchFixture([]);
    expect(await appliedOn(hostname, stock.img)).toBe(false);
    const patched = await patchFixture([hostname], { hostname: 'pocket' });
    expect(await appliedOn(hostname, patched.img)).toBe(true);
  });
});

describe('setHostsSelfName', () => {
  it('replaces every name on the line but keeps its spacing and comment', () => {
    expect(setHostsSelfName('127.0.1.1   odroid.lan odroid  # me\n', 'pocket')).toBe('127.0.1.1   pocket  # me\n');
  });

  it('leaves commented lines alone and edits only the first active one', () => {
    const text = '#127.0.1.1 old\n127.0.1.1 a\n127.0.1.1 b\n';
    expect(setHostsSelfName(text, 'pocket')).toBe('#127.0.1.1 old\n127.0.1.1 pocket\n127.0.1.1 b\n');
  });

  it('adds the line first when there is no 127.0.0.1 line', () => {
    expect(setHostsSelfName('::1 localhost\n', 'pocket')).toBe('127.0.1.1\tpocket\n::1 localhost\n');
  });
});
