/**
 * Directories the kit's install.sh refuses to export: exported rw,no_root_squash to the device, any
 * of them would give the device's root the host's system. Rendered into install.sh from here.
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
