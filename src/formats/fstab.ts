/**
 * Text edits of /etc/fstab that keep every byte they do not need to change: comments, blank
 * lines, the spacing between fields and the line endings.
 */

/** The six fields of fstab(5); freq and passno may be missing (they default to 0). */
export interface FstabEntry {
  spec: string;
  file: string;
  vfstype: string;
  mntops: string;
  freq?: string;
  passno?: string;
}

const FIELDS = ['spec', 'file', 'vfstype', 'mntops', 'freq', 'passno'] as const;

/** An active line: whitespace-separated fields, the separators kept to rebuild it. */
function parseEntry(body: string): { entry: FstabEntry; pieces: string[] } | undefined {
  if (/^\s*(#|$)/.test(body)) return undefined;
  // Odd indices are the separators (and a leading/trailing run of whitespace sits at the ends).
  const pieces = body.split(/(\s+)/);
  const values = pieces.filter((_, i) => i % 2 === 0 && pieces[i] !== '');
  if (values.length < 4) return undefined;
  const [spec, file, vfstype, mntops, freq, passno] = values;
  return { entry: { spec, file, vfstype, mntops, freq, passno }, pieces };
}

/** Puts the entry's values back between the original separators. */
function formatEntry(entry: FstabEntry, pieces: string[]): string {
  const values = FIELDS.map((field) => entry[field]);
  let field = 0;
  return pieces.map((piece, i) => (i % 2 === 1 || piece === '' ? piece : (values[field++] ?? piece))).join('');
}

/**
 * Rewrites each active entry through `edit`: it returns the entry changed, the same entry, or
 * 'comment' to disable the line with a leading '#'. Lines `edit` leaves alone keep every byte.
 * Only fields the line has can change: a missing freq or passno already means 0.
 */
export function editFstab(text: string, edit: (entry: FstabEntry) => FstabEntry | 'comment'): string {
  return text
    .split(/(?<=\n)/)
    .map((line) => {
      const body = line.replace(/\r?\n$/, '');
      const eol = line.slice(body.length);
      const parsed = parseEntry(body);
      if (!parsed) return line;
      const result = edit({ ...parsed.entry });
      if (result === 'comment') return `#${line}`;
      const unchanged = FIELDS.every((field) => result[field] === parsed.entry[field]);
      return unchanged ? line : formatEntry(result, parsed.pieces) + eol;
    })
    .join('');
}

/**
 * The mount options with `ro` first instead of `rw`/`defaults` (which only restate the defaults
 * and would make a later `ro` look overridden to a reader). Idempotent.
 */
export function readOnlyOptions(mntops: string): string {
  const rest = mntops.split(',').filter((option) => option !== '' && !['ro', 'rw', 'defaults'].includes(option));
  return ['ro', ...rest].join(',');
}

/**
 * The FAT is mounted read-only and never checked at boot (an automatic fsck.vfat repair is a write
 * a power cut can interrupt; the device never writes it, so there is nothing of its own to repair).
 * Swap is disabled: swapon writes to the card through the file system, overlay or not.
 */
export function protectFstab(text: string): string {
  return editFstab(text, (entry) => {
    if (entry.vfstype === 'swap') return 'comment';
    if (entry.vfstype !== 'vfat') return entry;
    return { ...entry, mntops: readOnlyOptions(entry.mntops), passno: entry.passno === undefined ? undefined : '0' };
  });
}
