import { UserError } from '../errors.js';

/**
 * Reproducible builds (https://reproducible-builds.org/specs/source-date-epoch/):
 * with SOURCE_DATE_EPOCH set, every timestamp the build writes is that instant.
 * libext2fs and FatFs are WASM modules that read the clock through Date.now() (ext2fs
 * has no utimes, so new inodes cannot be re-stamped afterwards), and FatFs converts it
 * with the local time zone: pinning Date.now and TZ pins both.
 */

/**
 * FAT stores years from 1980 (0 came out as 2098); ext4 inodes without the extra timestamp fields
 * (128-byte inodes) store signed 32-bit seconds, so 2^31 and later wrap to 1901.
 */
const EARLIEST = 315532800; // 1980-01-01T00:00:00Z
const LATEST = 2 ** 31 - 1; // 2038-01-19T03:14:07Z

export function sourceDateEpoch(env: NodeJS.ProcessEnv = process.env): number | undefined {
  const value = env.SOURCE_DATE_EPOCH;
  if (value === undefined || value === '') return undefined;
  const seconds = /^\d{1,12}$/.test(value) ? Number(value) : Number.NaN;
  if (!(seconds >= EARLIEST && seconds <= LATEST)) {
    throw new UserError(
      `SOURCE_DATE_EPOCH ${JSON.stringify(value.slice(0, 40))} is not a whole number of seconds from ${EARLIEST} (1980-01-01, the earliest FAT date) to ${LATEST} (2038-01-19, the latest ext4 date without extra timestamp fields); set it to one, e.g. $(git log -1 --format=%ct), or unset it`,
    );
  }
  return seconds;
}

export function pinClock(epochSeconds: number): void {
  const ms = epochSeconds * 1000;
  Date.now = () => ms;
  process.env.TZ = 'UTC';
}
