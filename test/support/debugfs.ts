/**
 * debugfs and dumpe2fs on an image's rootfs, read in place (libext2fs opens "file?offset=N" as the
 * file system at byte N), so tests check what the build wrote with the real tools.
 */
import { execFile as execFileCallback, spawnSync } from 'node:child_process';
import { access } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { promisify } from 'node:util';
import { rootfsSpec, tempDir } from './images.js';

const execFile = promisify(execFileCallback);
const MAX_OUTPUT = 64 * 1024 * 1024;
const exists = (path: string) =>
  access(path).then(
    () => true,
    () => false,
  );

/**
 * Runs one debugfs request on the rootfs. debugfs exits 0 even when the request fails and
 * reports on stderr after its version banner, so any other stderr line is the error.
 */
export async function debugfs(img: string, request: string): Promise<{ stdout: string; error?: string }> {
  const { stdout, stderr } = await execFile('debugfs', ['-R', request, await rootfsSpec(img)], { maxBuffer: MAX_OUTPUT });
  const error = stderr
    .split('\n')
    .filter((line) => line && !line.startsWith('debugfs '))
    .join('\n');
  return { stdout, error: error || undefined };
}

const quote = (path: string) => `"${path}"`;

/** A file's contents as debugfs reads them from the rootfs. */
export async function debugfsCat(img: string, path: string): Promise<string> {
  const { stdout, error } = await debugfs(img, `cat ${quote(path)}`);
  if (error) throw new Error(`debugfs cat ${path}: ${error}`);
  return stdout;
}

export interface DebugfsStat {
  /** Permission bits including setuid, setgid and sticky (0o1777 for /tmp). */
  mode: number;
  uid: number;
  gid: number;
  /** debugfs's word: "regular", "directory", "symlink", ... */
  type: string;
  size: number;
  /** For a symlink, where it points. */
  target?: string;
}

/** An inode as debugfs reports it (without following a final symlink), or undefined if absent. */
export async function debugfsStat(img: string, path: string): Promise<DebugfsStat | undefined> {
  const { stdout, error } = await debugfs(img, `stat ${quote(path)}`);
  if (error && /not found/i.test(error)) return undefined;
  if (error) throw new Error(`debugfs stat ${path}: ${error}`);
  const field = (pattern: RegExp) => {
    const match = pattern.exec(stdout);
    if (!match) throw new Error(`debugfs stat ${path}: no ${pattern.source} in:\n${stdout}`);
    return match[1];
  };
  const target = /Fast link dest: "(.*)"/.exec(stdout)?.[1];
  return {
    mode: parseInt(field(/Mode:\s+(\d+)/), 8),
    uid: Number(field(/User:\s+(\d+)/)),
    gid: Number(field(/Group:\s+(\d+)/)),
    type: field(/Type: (\S+)/),
    size: Number(field(/Size: (\d+)/)),
    ...(target === undefined ? {} : { target }),
  };
}

/** The rootfs superblock as `dumpe2fs -h` prints it, e.g. { 'Filesystem UUID': '...' }. */
export async function dumpe2fsHeader(img: string): Promise<Record<string, string>> {
  const { stdout } = await execFile('dumpe2fs', ['-h', await rootfsSpec(img)], { maxBuffer: MAX_OUTPUT });
  const fields: Record<string, string> = {};
  for (const line of stdout.split('\n')) {
    const match = /^([^:]+):\s*(.*)$/.exec(line);
    if (match) fields[match[1]] ??= match[2].trim();
  }
  return fields;
}

/** A rootfs directory copied out by debugfs rdump (keeping modes and owners): the path of the copy. */
export async function debugfsDumpDir(img: string, dir: string): Promise<string> {
  const copy = join(await tempDir(), basename(dir));
  // debugfs reports a missing directory on stderr and exits 0.
  await execFile('debugfs', ['-R', `rdump ${quote(dir)} ${quote(dirname(copy))}`, await rootfsSpec(img)], { maxBuffer: MAX_OUTPUT });
  if (!(await exists(copy))) throw new Error(`debugfs rdump ${dir}: not in the rootfs of ${img}`);
  return copy;
}

/**
 * Runs many debugfs requests in one process (each spawn costs more than a request); `write`
 * opens the file system read-write. Returns stdout; a request's failure is on stderr.
 */
export async function debugfsBatch(
  img: string,
  requests: string[],
  options: { write?: boolean } = {},
): Promise<{ stdout: string; stderr: string }> {
  const run = spawnSync('debugfs', [...(options.write ? ['-w'] : []), '-f', '-', await rootfsSpec(img)], {
    input: requests.join('\n'),
    encoding: 'utf8',
    maxBuffer: MAX_OUTPUT,
  });
  if (run.error) throw run.error;
  return { stdout: run.stdout, stderr: run.stderr };
}
