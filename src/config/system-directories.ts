/**
 * Directories never exported: exported rw,no_root_squash to the device, any of them would give the
 * device's root the host's system. The config refuses them as nfs.export, and the kit's install.sh
 * (rendered from here) refuses them again on the host, after following symlinks.
 */
export const SYSTEM_DIRECTORIES = [
  '/',
  '/bin',
  '/boot',
  '/dev',
  '/etc',
  '/home',
  '/lib',
  '/lib64',
  '/opt',
  '/proc',
  '/root',
  '/run',
  '/sbin',
  '/srv',
  '/sys',
  '/tmp',
  '/usr',
  '/usr/local',
  '/var',
  '/var/lib',
  '/var/log',
] as const;

/** Trees nothing inside of may be exported either: the host's configuration, boot files, programs and kernel views. */
export const SYSTEM_TREES = ['/bin', '/boot', '/dev', '/etc', '/lib', '/lib64', '/proc', '/run', '/sbin', '/sys', '/usr'] as const;

/** Why `path` (absolute, normalized) must not be exported, if it must not. */
export function systemDirectoryOf(path: string): string | undefined {
  if ((SYSTEM_DIRECTORIES as readonly string[]).includes(path)) return path;
  return SYSTEM_TREES.find((tree) => path.startsWith(`${tree}/`));
}
