/**
 * An error caused by the user's input (a bad image, a bad config, an unreachable URL).
 * build.ts prints its message as one line and exits non-zero; anything else is a bug
 * and gets a stack trace.
 */
export class UserError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'UserError';
  }
}

export const isUserError = (error: unknown): error is UserError => error instanceof UserError;

/** The errno codes of a write the machine refused: the user's to fix (runMain says how), not a bug. */
export const REFUSED_WRITES: Readonly<Record<string, string>> = {
  ENOSPC: 'no space left on device',
  EDQUOT: 'disk quota exceeded',
  EROFS: 'read-only file system',
};

/** Node's own error of a system call (libuv's errno is negative); libraries' errors may look alike. */
function isSystemError(error: unknown): error is NodeJS.ErrnoException {
  if (!(error instanceof Error)) return false;
  const { syscall, errno } = error as NodeJS.ErrnoException;
  return typeof syscall === 'string' && typeof errno === 'number' && errno < 0;
}

/**
 * The errno code when `error` is a write the machine refused (a full disk, a quota, a read-only
 * mount). Only Node's system errors count: a full partition inside the image is not the host's.
 */
export function refusedWrite(error: unknown): string | undefined {
  return isSystemError(error) && error.code !== undefined && error.code in REFUSED_WRITES ? error.code : undefined;
}

/**
 * Names `path` in a system error that names none, and returns it: a write through a file
 * descriptor fails without the path that tells the user which file could not be written.
 */
export function withPath<E>(error: E, path: string): E {
  if (isSystemError(error) && error.path === undefined) error.path = path;
  return error;
}
