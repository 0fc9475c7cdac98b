import { describe, expect, it } from 'vitest';
import { editFstab, readOnlyOptions } from '../src/formats/fstab.js';

describe('editFstab', () => {
  const fstab = [
    '# /etc/fstab: static file system information.',
    'UUID=e139ce78-9841-40fe-8823-96a304a09859 / ext4 errors=remount-ro,noatime 0 1',
    'LABEL=BOOT\t/media/boot   vfat  defaults  0  1',
    '',
    '/dev/sda2 none swap sw',
    '',
  ].join('\n');

  it('keeps every byte of the lines it leaves alone, and the spacing of those it edits', () => {
    expect(editFstab(fstab, (entry) => entry)).toBe(fstab);
    const edited = editFstab(fstab, (entry) => (entry.file === '/media/boot' ? { ...entry, mntops: 'ro', passno: '0' } : entry));
    expect(edited.split('\n')).toEqual([
      ...fstab.split('\n').slice(0, 2),
      'LABEL=BOOT\t/media/boot   vfat  ro  0  0',
      ...fstab.split('\n').slice(3),
    ]);
  });

  it('comments a line out once and never touches comments', () => {
    const once = editFstab(fstab, (entry) => (entry.vfstype === 'swap' ? 'comment' : entry));
    expect(once).toContain('\n#/dev/sda2 none swap sw\n');
    expect(editFstab(once, (entry) => (entry.vfstype === 'swap' ? 'comment' : entry))).toBe(once);
  });

  it('reads the fields a line has: freq and passno may be missing, CRLF stays', () => {
    const seen: object[] = [];
    const text = 'proc /proc proc defaults\r\n';
    expect(
      editFstab(text, (entry) => {
        seen.push(entry);
        return { ...entry, mntops: 'nosuid' };
      }),
    ).toBe('proc /proc proc nosuid\r\n');
    expect(seen).toEqual([{ spec: 'proc', file: '/proc', vfstype: 'proc', mntops: 'defaults', freq: undefined, passno: undefined }]);
  });
});

describe('readOnlyOptions', () => {
  it('puts ro in place of rw and defaults, once', () => {
    expect(readOnlyOptions('defaults')).toBe('ro');
    expect(readOnlyOptions('rw,noatime,umask=0077')).toBe('ro,noatime,umask=0077');
    expect(readOnlyOptions('defaults,ro,noatime')).toBe('ro,noatime');
    expect(readOnlyOptions(readOnlyOptions('rw,noatime'))).toBe('ro,noatime');
  });
});
