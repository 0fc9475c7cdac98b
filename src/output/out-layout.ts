/**
 * Every path a build uses under --out, named here and nowhere else, and what a build may do with
 * each (docs/out-dir.md says the same to users):
 * - `<name>.img` and its files beside it, `SHA256SUMS`: made as temp files, renamed into place
 *   (a directory at one of them is refused before any work);
 * - `secrets/`: made on first use and kept; `--rotate-secrets` replaces it whole;
 * - `host/`: replaced whole by every build, so one without KIT_MARKER is refused before any work;
 * - `.build.lock`, `.build.journal`: the running build's;
 * - temp names (below): recorded in the journal before they are made; after a killed build, the
 *   next one deletes exactly those its journal names (leftoverOf), nothing that merely looks alike.
 */
import { randomBytes } from 'node:crypto';
import { lstat } from 'node:fs/promises';
import { basename, dirname, isAbsolute, join, relative } from 'node:path';
import { UserError } from '../errors.js';
import { exists } from '../files.js';

export const LOCK_FILE = '.build.lock';
export const JOURNAL_FILE = '.build.journal';
export const SUMS_FILE = 'SHA256SUMS';
export const secretsDirOf = (outDir: string) => join(outDir, 'secrets');
export const hostKitDirOf = (outDir: string) => join(outDir, 'host');

/** In every host kit: a host/ without it (a user's own directory, or a kit from before it) is never replaced. */
export const KIT_MARKER = '.written-by-odroid-buildx-image';

/** The files `--release` adds for image `<name>.img`, by their names in --out. */
export function releaseFiles(name: string): { xz: string; bmap: string } {
  return { xz: `${name}.img.xz`, bmap: `${name}.bmap` };
}

/** Every file a build of image `name` may rename into --out. */
export const imageFiles = (name: string) => [`${name}.img`, `${name}.img.sha256`, ...Object.values(releaseFiles(name))];

/** `<dir>/.<file>.<pid>.tmp`: a file of this run, renamed to `<dir>/<file>` when complete. */
export const tempFileName = (dir: string, file: string) => join(dir, `.${file}.${process.pid}.tmp`);

/** A fresh name for a private directory: `.<name>.new-XXXXXX` beside `finalPath`, `.new-XXXXXX` in `dir`, or `.<name>.old-XXXXXX`. */
export const newDirNameBeside = (finalPath: string) => randomName(dirname(finalPath), `.${basename(finalPath)}.new-`);
export const newDirNameIn = (dir: string) => randomName(dir, '.new-');
export const oldDirNameBeside = (finalPath: string) => randomName(dirname(finalPath), `.${basename(finalPath)}.old-`);
/** A directory being replaced waits, until the images are in place, at `.<name>.old-XXXXXX/old`. */
export const OLD_INSIDE = 'old';

function randomName(dir: string, prefix: string): string {
  return join(dir, `${prefix}${randomBytes(6).toString('base64url').replace(/[-_]/g, '0').slice(0, 6)}`);
}

const OLD_DIR = /^\.(.+)\.old-[A-Za-z0-9]{6}$/;
const TEMP_NAME = /^\.(.+\.\d+\.tmp|(.+\.)?new-[A-Za-z0-9]{6})$/;

/**
 * What to do with a path a killed build's journal names (`entry`, relative to --out): delete it,
 * first putting back the directory it holds aside when it is one (`restore`). Undefined for a line
 * that is not one of the temp names above, or not under --out: it is left alone.
 */
export function leftoverOf(outDir: string, entry: string): { path: string; restore?: { kept: string; place: string } } | undefined {
  if (isAbsolute(entry) || relative(outDir, join(outDir, entry)).startsWith('..')) return undefined;
  const path = join(outDir, entry);
  const old = OLD_DIR.exec(basename(entry));
  if (old) return { path, restore: { kept: join(path, OLD_INSIDE), place: join(dirname(path), old[1]) } };
  return TEMP_NAME.test(basename(entry)) ? { path } : undefined;
}

/**
 * Refuses, in one line before any work, what the build would replace but must not: a host/ this
 * tool did not write, and a directory where one of the images' files goes (the rename would fail
 * only at the end).
 */
export async function checkReplaceable(outDir: string, names: string[]): Promise<void> {
  const kit = hostKitDirOf(outDir);
  if ((await exists(kit)) && !(await exists(join(kit, KIT_MARKER)))) {
    throw new UserError(
      `${kit} was not written by this tool (it has no ${KIT_MARKER}), and a build replaces host/ whole: move it away (or, if it is an earlier build's kit, delete it), or pass another --out`,
    );
  }
  for (const path of names.flatMap(imageFiles).map((file) => join(outDir, file))) {
    if ((await lstat(path).catch(() => undefined))?.isDirectory())
      throw new UserError(`${path} is a directory, where the build writes a file: move it away, or pass another --out or --name`);
  }
}
