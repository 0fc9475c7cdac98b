import { spawnSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { mountUnitName } from '../../src/facts/systemd.js';
import { skipWithout } from '../support/images.js';

// What systemd-escape --path --suffix=mount prints for each path (systemd 252).
const NAMES: [string, string][] = [
  ['/', '-.mount'],
  ['/var/lib/docker', 'var-lib-docker.mount'],
  ['/run/builder-storage/share', 'run-builder\\x2dstorage-share.mount'],
  ['/media/.hidden dir/', 'media-.hidden\\x20dir.mount'],
  ['/srv//a.b/é', 'srv-a.b-\\xc3\\xa9.mount'],
  ['/.x', '\\x2ex.mount'],
];

describe('mountUnitName', () => {
  it('names a mount point as systemd does', () => {
    for (const [path, name] of NAMES) expect(mountUnitName(path), path).toBe(name);
  });

  const noSystemdEscape = skipWithout({ 'systemd-escape': spawnSync('systemd-escape', ['--version']).status === 0 });
  it.skipIf(noSystemdEscape)('agrees with systemd-escape on this machine', () => {
    for (const [path] of NAMES) {
      const escaped = spawnSync('systemd-escape', ['--path', '--suffix=mount', path], { encoding: 'utf8' });
      expect(mountUnitName(path), path).toBe(escaped.stdout.trim());
    }
  });
});
