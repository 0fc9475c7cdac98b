/**
 * Node's fs where it does not say enough. fs.promises.writeFile opens the file by its path but
 * writes through the descriptor, so a full disk's ENOSPC comes without the path that tells the
 * user which file (and so which directory) is out of room: the files the build writes in --out
 * and the image cache go through here.
 */
import { lstat, writeFile as writeFileUnnamed } from 'node:fs/promises';
import { withPath } from './errors.js';

export async function writeFile(path: string, data: string | Uint8Array, options?: { mode?: number }): Promise<void> {
  try {
    await writeFileUnnamed(path, data, options);
  } catch (error) {
    throw withPath(error, path);
  }
}

/**
 * Whether `path` is there (a link counts, not followed). Only ENOENT means absent: a path we may
 * not read (EACCES, EIO) is an error, never a reason to make a new one over it.
 */
export async function exists(path: string): Promise<boolean> {
  return lstat(path).then(
    () => true,
    (error: NodeJS.ErrnoException) => {
      if (error.code === 'ENOENT') return false;
      throw error;
    },
  );
}
