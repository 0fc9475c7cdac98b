import { UserError } from '../errors.js';

/**
 * Reproducible builds (https://reproducible-builds.org/specs/source-date-epoch/):
 * with SOURCE_DATE_EPOCH set, every timestamp the build writes is that instant.
 * libext2fs and FatFs are WASM modules that read the clock through Date.now() (ext2fs
 * has no utimes, so new inodes cannot be re-stamped afterwards), and FatFs converts it
 * with the local time zone: pinning Date.now and TZ pins both.
 */
export function sourceDateEpoch(env: NodeJS.ProcessEnv = process.env): number | undefined {
  const value = env.SOURCE_DATE_EPOCH;
  if (value === undefined || value === '') return undefined;
  if (!/^\d+$/.test(value)) throw new UserError(`SOURCE_DATE_EPOCH must be a number of seconds since 1970, got "${value}"`);
  return Number(value);
}

export function pinClock(epochSeconds: number): void {
  const ms = epochSeconds * 1000;
  Date.now = () => ms;
  process.env.TZ = 'UTC';
}
