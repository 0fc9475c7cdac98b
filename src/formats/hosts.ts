/** /etc/hosts, as text. */

// Debian's convention: the host's own name resolves through 127.0.1.1, so `hostname -f` and
// sudo work without a DNS answer for it (the device has no entry in any DNS).
const SELF_LINE = /^(\s*127\.0\.1\.1\s+)([^#]*?)(\s*(?:#.*)?)$/;
const LOCALHOST_LINE = /^\s*127\.0\.0\.1\s/;

/**
 * Makes the first active 127.0.1.1 line name only `hostname` (its spacing and comment stay);
 * without one, adds it after the 127.0.0.1 line, or first.
 */
export function setHostsSelfName(text: string, hostname: string): string {
  const lines = text.split('\n');
  const self = lines.findIndex((line) => SELF_LINE.test(line));
  if (self >= 0) {
    lines[self] = lines[self].replace(SELF_LINE, (_line, address: string, _names: string, rest: string) => address + hostname + rest);
    return lines.join('\n');
  }
  const after = lines.findIndex((line) => LOCALHOST_LINE.test(line)) + 1;
  lines.splice(after, 0, `127.0.1.1\t${hostname}`);
  return lines.join('\n');
}
