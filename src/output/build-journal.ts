/**
 * The build's journal, `<out>/.build.journal`: every temp path the build makes under --out, written
 * before the path is made, and a last line once the images are in place. A build killed outright
 * (SIGKILL, a power cut) leaves it, and the next build into the same --out cleans exactly what it
 * names: nothing in --out is deleted or moved for looking like a leftover (temp-files.ts).
 * Only with the --out lock held (out-lock.ts), so one build writes it at a time.
 */
import { closeSync, constants, fsyncSync, openSync, readFileSync, unlinkSync, writeSync } from 'node:fs';
import { join, relative } from 'node:path';
import { JOURNAL_FILE } from './out-layout.js';

/** The first line: a file of that name this tool did not write is not read as its journal. */
const HEADER = 'odroid-buildx-image build journal 1';
/** The last line of a build whose images were renamed into place: what it moved aside is no longer needed. */
const COMMITTED = 'committed';

export interface KilledBuild {
  /** The temp paths it made, in the order it made them, relative to --out. */
  paths: string[];
  /** Whether its images were all in place when it was killed. */
  committed: boolean;
}

let journal: { fd: number; outDir: string } | undefined;
let committed = false;

function append(line: string): void {
  if (!journal) return;
  writeSync(journal.fd, `${line}\n`);
  // On disk before the path it names is made: a power cut must not leave a path nobody names.
  fsyncSync(journal.fd);
}

/**
 * Starts this build's journal in `outDir`, returning what a killed build's journal there named
 * (none when there is no journal, or a file of that name that is not one).
 */
export function startJournal(outDir: string): KilledBuild {
  const path = join(outDir, JOURNAL_FILE);
  let text = '';
  try {
    text = readFileSync(path, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
  }
  const [header, ...lines] = text.split('\n').filter(Boolean);
  const killed =
    header === HEADER ? { paths: lines.filter((line) => line !== COMMITTED), committed: lines.includes(COMMITTED) } : undefined;
  const fd = openSync(path, constants.O_WRONLY | constants.O_CREAT | constants.O_TRUNC | constants.O_APPEND, 0o600);
  journal = { fd, outDir };
  append(HEADER);
  return killed ?? { paths: [], committed: false };
}

/** Records `path` (under --out) as this build's, before it is made. Outside a build (no journal), nothing. */
export function recordTempPath(path: string): void {
  if (journal) append(relative(journal.outDir, path));
}

/** Records that the images are in place: from here on, what the build moved aside is garbage. */
export function recordCommitted(): void {
  append(COMMITTED);
  committed = true;
}

/** Whether this build's images are in place. */
export const buildCommitted = () => committed;

/** Ends the journal of a build that did not leave anything to clean up. */
export function endJournal(): void {
  if (!journal) return;
  unlinkSync(join(journal.outDir, JOURNAL_FILE));
  closeSync(journal.fd);
  journal = undefined;
}
