/** netplan's YAML, as text: line edits that keep the file's own layout and comments. */

/**
 * `optional: true` in the netplan device block `name:` (block style), so networkd's or
 * NetworkManager's wait-online does not wait for it. A flow-style block is left as it is.
 */
export function netplanOptional(yaml: string, name: string): string {
  const eol = /\r\n/.test(yaml) ? '\r\n' : '\n';
  const lines = yaml.split(/\r?\n/);
  const start = lines.findIndex((line) => new RegExp(`^(\\s*)${name}:\\s*(#.*)?$`).test(line));
  if (start < 0) return yaml;
  const indent = /^\s*/.exec(lines[start])![0].length;
  let end = start + 1;
  while (end < lines.length && (lines[end].trim() === '' || /^\s*/.exec(lines[end])![0].length > indent)) end++;
  const block = lines.slice(start + 1, end);
  const childIndent = block.find((line) => line.trim() !== '')?.match(/^\s*/)?.[0] ?? `${' '.repeat(indent)}  `;
  const optional = block.findIndex((line) => line.startsWith(`${childIndent}optional:`));
  if (optional >= 0) {
    if (/^\s*optional:\s*(true|yes)\s*(#.*)?$/.test(block[optional])) return yaml;
    lines[start + 1 + optional] = `${childIndent}optional: true`;
  } else {
    lines.splice(start + 1, 0, `${childIndent}optional: true`);
  }
  return lines.join(eol);
}
