/**
 * Node's fs where it does not say enough. fs.promises.writeFile opens the file by its path but
 * writes through the descriptor, so a full disk's ENOSPC comes without the path that tells the
 * user which file (and so which directory) is out of room: the files the build writes in --out
 * and the image cache go through here.
 */
import { lstat, readFile, writeFile as writeFileUnnamed } from 'node:fs/promises';
import { UserError, withPath } from './errors.js';

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

/** A file's text, or undefined when it is not there; any other failure (EACCES, EIO) is thrown. */
export async function readIfExists(path: string): Promise<string | undefined> {
  try {
    return await readFile(path, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw error;
  }
}

/**
 * A JSON file the user may have to mend (a manifest, a lock): its parsed value, or one line
 * naming the file, what is wrong with it and `fix`. A missing file is `fallback` when one is given.
 */
export async function readJson(path: string, fix: string, fallback?: unknown): Promise<unknown> {
  let text: string | undefined;
  try {
    text = await readIfExists(path);
  } catch (error) {
    throw new UserError(`cannot read ${path}: ${(error as Error).message}; ${fix}`);
  }
  if (text === undefined) {
    if (fallback !== undefined) return fallback;
    throw new UserError(`${path} is missing; ${fix}`);
  }
  try {
    return JSON.parse(text) as unknown;
  } catch (error) {
    throw new UserError(`cannot read ${path}: ${(error as Error).message}; ${fix}`);
  }
}
