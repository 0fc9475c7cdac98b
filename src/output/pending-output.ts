import { execFile } from 'node:child_process';
import { access, constants, mkdir, open, readFile, rename, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { UserError } from '../errors.js';
import { writeFile } from '../files.js';
import { killPoint } from '../timing.js';
import { recordCommitted } from './build-journal.js';
import { releaseFiles, SUMS_FILE } from './out-layout.js';
import { removeOnInterrupt, tempFileOf } from './temp-files.js';

/**
 * A run's images (one, or one per device of a fleet) are built as hidden temp files in --out, beside
 * their other artifacts, and renamed into place together only when all are complete, so a failed
 * or interrupted build never leaves a <name>.img behind.
 */
export interface PendingImage {
  /** The temp image being patched. */
  tempPath: string;
  /** Where it will land. */
  finalPath: string;
  /** A temp path in --out for another artifact of this image (e.g. `<name>.img.xz`), renamed by commit(). */
  artifact(fileName: string): string;
}

// flash/plan.ts finds a .bmap by it.
export { releaseFiles };

/**
 * An image and its xz hold the device's private keys (TLS server key, SSH host keys), readable by
 * anyone with debugfs: they are made owner-only from their first byte, as secrets/ is.
 */
export const PRIVATE_FILE_MODE = 0o600;

/** Creates `path` empty and owner-only; it must not exist. cp and xz then write into it, keeping its mode. */
export async function createPrivateFile(path: string): Promise<void> {
  await (await open(path, 'wx', PRIVATE_FILE_MODE)).close();
}

export interface PendingOutput {
  /** Copies the source image into a temp file for `<name>.img`, keeping holes as holes. */
  startImage(sourcePath: string, name: string): Promise<PendingImage>;
  /**
   * Writes, as temp files, `<name>.img.sha256` for each image `sha256s` has (the others' old one
   * goes: it would not match) and, when there are artifacts besides the images, the lines of every
   * image and artifact of the run into SHA256SUMS, keeping other images' lines. Returns each image's
   * final path with the checksum files that will cover it (none for an image without a sha256).
   * Everything that can fail for want of space fails here, before anything is in place.
   */
  prepare(sha256s: Record<string, string>): Promise<Map<string, string[]>>;
  /**
   * Renames everything into place, the images last, and removes what an earlier release of the
   * same images left that would not match them. Only after prepare().
   */
  commit(): Promise<void>;
  /** Removes every temp file of the run. */
  discard(): Promise<void>;
}

export async function prepareOutputDir(outDir: string): Promise<void> {
  try {
    await mkdir(outDir, { recursive: true });
    await access(outDir, constants.W_OK);
  } catch (error) {
    throw new UserError(
      `cannot write to the output directory ${outDir} (${(error as NodeJS.ErrnoException).code}): pass a writable directory with --out`,
    );
  }
}

export function pendingOutput(outDir: string): PendingOutput {
  // Every file of the run, images and artifacts, by its name in --out, with its temp path.
  const files = new Map<string, string>();
  // Each temp file's removal if the build is stopped by a signal, undone once it is renamed or removed.
  const forget = new Map<string, () => void>();
  const images: string[] = [];
  // What a release of the run's images would add, written by this run or not.
  const releases: string[] = [];
  // What an earlier release left that this run does not replace, found by prepare().
  const stale: string[] = [];
  const tempFor = (file: string) => {
    const temp = tempFileOf(outDir, file);
    files.set(file, temp);
    forget.set(temp, removeOnInterrupt(temp));
    return temp;
  };
  return {
    async startImage(sourcePath, name) {
      const image = `${name}.img`;
      const tempPath = tempFor(image);
      // Outside the try: a file already at that name is not this run's to remove.
      await createPrivateFile(tempPath).catch((error: unknown) => {
        files.delete(image);
        forget.get(tempPath)?.();
        throw error;
      });
      try {
        // cp skips holes with SEEK_DATA/SEEK_HOLE (and reflinks where the file system can),
        // so a mostly-empty 4 GiB image costs what its data costs. Not through zx: its $ turns
        // on async hooks for the rest of the process, a cost on every await of the patch.
        await promisify(execFile)('cp', ['--sparse=always', '--reflink=auto', sourcePath, tempPath]);
      } catch (error) {
        files.delete(image);
        await rm(tempPath, { force: true });
        forget.get(tempPath)?.();
        const detail = String((error as { stderr?: string }).stderr ?? error)
          .trim()
          .split('\n')
          .pop();
        throw new UserError(`cannot copy ${sourcePath} to ${outDir}: ${detail}; check free space in --out, or pass another --out`);
      }
      images.push(image);
      releases.push(...Object.values(releaseFiles(name)));
      return { tempPath, finalPath: join(outDir, image), artifact: tempFor };
    },
    async prepare(sha256s) {
      const line = (file: string) => `${sha256s[file]}  ${file}`;
      // A release (artifacts besides the images) lists the run's files in SHA256SUMS: one file for
      // the run, as per image a fleet's devices would overwrite each other's.
      const listed = files.size > images.length ? [...files.keys()] : [];
      const hashed = images.filter((image) => sha256s[image] !== undefined);
      for (const image of hashed) await writeFile(tempFor(`${image}.sha256`), `${line(image)}\n`);
      // An earlier checksum or release of these images no longer matches them: what this run does
      // not replace goes. SHA256SUMS keeps other images' lines (another device's, another image's release).
      stale.push(...[...images.map((image) => `${image}.sha256`), ...releases].filter((file) => !files.has(file)));
      const sums = await mergedSums(join(outDir, SUMS_FILE), new Set([...images, ...releases]), listed.map(line));
      if (sums === '') stale.push(SUMS_FILE);
      else if (sums !== undefined) await writeFile(tempFor(SUMS_FILE), sums);
      const shared = listed.length > 0 ? [join(outDir, SUMS_FILE)] : [];
      return new Map(hashed.map((image) => [join(outDir, image), [join(outDir, `${image}.sha256`), ...shared]]));
    },
    async commit() {
      // The images last: a <name>.img present means the whole set is.
      for (const [file, temp] of files) if (!images.includes(file)) await putInPlace(temp, join(outDir, file));
      for (const file of stale) await rm(join(outDir, file), { force: true });
      killPoint('rename images');
      for (const image of images) await putInPlace(files.get(image)!, join(outDir, image));
      recordCommitted();
      for (const temp of files.values()) forget.get(temp)?.();
    },
    async discard() {
      for (const temp of files.values()) {
        await rm(temp, { force: true });
        forget.get(temp)?.();
      }
    },
  };
}

/** Renames `temp` to `path`; a `path` that cannot be replaced (immutable, read-only) is the user's to mend, in one line. */
async function putInPlace(temp: string, path: string): Promise<void> {
  try {
    await rename(temp, path);
  } catch (error) {
    const { code } = error as NodeJS.ErrnoException;
    if (code !== 'EPERM' && code !== 'EACCES' && code !== 'EROFS' && code !== 'EISDIR' && code !== 'EBUSY') throw error;
    throw new UserError(
      `cannot replace ${path} (${code}): make it replaceable (chattr -i, a writable mount, not a directory), or pass another --out`,
    );
  }
}

/**
 * The SHA256SUMS at `path` with its lines naming any of `replaced` dropped and `added` put in, in
 * file name order: '' when no line is left, undefined when nothing changes (the file stays as it
 * is, or absent). Lines in sha256sum's binary (`*`) form count too; lines it does not recognise are
 * kept, first.
 */
async function mergedSums(path: string, replaced: Set<string>, added: string[]): Promise<string | undefined> {
  const text = await readFile(path, 'utf8').catch((error: NodeJS.ErrnoException) => {
    if (error.code === 'ENOENT') return '';
    throw error;
  });
  const nameOf = (line: string) => /^[0-9a-f]{64} [ *](.*)$/i.exec(line)?.[1] ?? '';
  const lines = text.split('\n').filter(Boolean);
  const kept = lines.filter((line) => !replaced.has(nameOf(line)));
  if (kept.length === lines.length && added.length === 0) return undefined;
  const byName = (a: string, b: string) => (nameOf(a) < nameOf(b) ? -1 : nameOf(a) > nameOf(b) ? 1 : 0);
  return [...kept, ...added]
    .sort(byName)
    .map((line) => `${line}\n`)
    .join('');
}
