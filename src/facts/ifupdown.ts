/** The files ifupdown reads: /etc/network/interfaces and what its `source` and `source-directory` lines pull in. */
import { posix } from 'node:path';
import type { ImageView } from '../engine/step.js';
import { globRegExp, RUN_PARTS_NAME } from '../formats/ifupdown.js';

export const INTERFACES = '/etc/network/interfaces';

export interface IfupdownFile {
  path: string;
  text: string;
}

const GLOB_CHARS = /[*?[]/;

/** The paths a glob names in the image, as the shell's glob(3) would list them (sorted, no dot files unless asked). */
async function expandGlob(image: ImageView, glob: string): Promise<string[]> {
  let matches = ['/'];
  for (const part of glob.split('/').filter(Boolean)) {
    const next: string[] = [];
    for (const dir of matches) {
      if (!GLOB_CHARS.test(part)) {
        next.push(posix.join(dir, part));
        continue;
      }
      const pattern = globRegExp(part);
      const names = (await image.readdir('rootfs', dir)).filter(
        (name) => pattern.test(name) && (part.startsWith('.') || !name.startsWith('.')),
      );
      next.push(...names.sort().map((name) => posix.join(dir, name)));
    }
    matches = next;
  }
  return matches;
}

/** What one `source` or `source-directory` line includes, relative paths taken from the including file's directory. */
async function included(image: ImageView, from: string, keyword: string, argument: string): Promise<string[]> {
  const path = posix.resolve(posix.dirname(from), argument);
  if (keyword === 'source') return expandGlob(image, path);
  const dirs = await expandGlob(image, path);
  const files: string[] = [];
  for (const dir of dirs)
    files.push(
      ...(await image.readdir('rootfs', dir))
        .filter((name) => RUN_PARTS_NAME.test(name))
        .sort()
        .map((name) => posix.join(dir, name)),
    );
  return files;
}

/**
 * Every file ifupdown reads, in its order: the main file, then each `source` (a path or glob)
 * and `source-directory` where its line stands, recursively; a file is read once.
 */
export async function ifupdownFiles(image: ImageView): Promise<IfupdownFile[]> {
  const files: IfupdownFile[] = [];
  const seen = new Set<string>();
  const visit = async (path: string): Promise<void> => {
    if (seen.has(path)) return;
    seen.add(path);
    const text = await image.readText('rootfs', path);
    if (text === undefined || (await image.lstat('rootfs', path))?.type !== 'file') return;
    files.push({ path, text });
    for (const line of text.split(/\r?\n/)) {
      const match = /^\s*(source-directory|source)\s+(\S+)\s*$/.exec(line);
      if (!match) continue;
      for (const file of await included(image, path, match[1], match[2])) await visit(file);
    }
  };
  await visit(INTERFACES);
  return files;
}

/** The interfaces other than lo that these files have an `iface` stanza for. */
export function configuredInterfaces(files: IfupdownFile[]): string[] {
  const names = files.flatMap(({ text }) => [...text.matchAll(/^\s*iface\s+(\S+)/gm)].map((match) => match[1]));
  return [...new Set(names.filter((name) => name !== 'lo'))];
}
