/** POSIX shell words, for values rendered into the scripts this tool writes. */

/**
 * `value` as one shell word that stands for itself: bare when it holds only characters no shell
 * treats specially, else single-quoted (a `'` inside closes, escapes and reopens the quotes).
 */
export function shellQuote(value: string): string {
  if (/^[A-Za-z0-9_@%+=:,./-]+$/.test(value)) return value;
  return `'${value.replaceAll("'", `'\\''`)}'`;
}
