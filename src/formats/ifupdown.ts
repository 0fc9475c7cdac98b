/** ifupdown's interfaces(5) files, as text. */
import { posix } from 'node:path';

/** A shell glob (`*`, `?`, `[...]`) as a regular expression over one path. */
export function globRegExp(glob: string): RegExp {
  let pattern = '';
  for (let i = 0; i < glob.length; i++) {
    const c = glob[i];
    const close = c === '[' ? glob.indexOf(']', i + 2) : -1;
    if (c === '*') pattern += '[^/]*';
    else if (c === '?') pattern += '[^/]';
    else if (close > 0) {
      pattern += `[${glob
        .slice(i + 1, close)
        .replace(/^!/, '^')
        .replace(/\\/g, '\\\\')}]`;
      i = close;
    } else pattern += c.replace(/[.+^${}()|[\]\\]/g, '\\$&');
  }
  return new RegExp(`^${pattern}$`);
}

/** run-parts' rule, which ifupdown's source-directory follows: names of letters, digits, `_` and `-` only. */
export const RUN_PARTS_NAME = /^[A-Za-z0-9_-]+$/;

/**
 * `name` brought up only when the kernel announces it (`allow-hotplug`), not at boot (`auto`,
 * `allow-auto`, which hold the network target until DHCP answers or gives up): its name leaves
 * every auto line, and one allow-hotplug line stands in for them. Unchanged text when there is
 * nothing to change.
 */
export function hotplugOnly(interfaces: string, name: string): string {
  const eol = /\r\n/.test(interfaces) ? '\r\n' : '\n';
  const lines = interfaces.split(/\r?\n/);
  const hotplugLine = `allow-hotplug ${name}`;
  let hotplug = lines.some((line) => /^\s*allow-hotplug\s/.test(line) && line.trim().split(/\s+/).includes(name));
  let changed = false;
  const edited = lines.flatMap((line) => {
    const match = /^(\s*)(auto|allow-auto)\s+(.*?)\s*$/.exec(line);
    const names = match ? match[3].split(/\s+/) : [];
    if (!match || !names.includes(name)) return [line];
    changed = true;
    const rest = names.filter((n) => n !== name);
    const replacement = hotplug ? [] : [`${match[1]}${hotplugLine}`];
    hotplug = true;
    return rest.length > 0 ? [`${match[1]}${match[2]} ${rest.join(' ')}`, ...replacement] : replacement;
  });
  return changed ? edited.join(eol) : interfaces;
}

/**
 * Whether a `source` or `source-directory` line of `text` (a file at `from`) would include
 * `file`, whether or not it exists yet: for a file a step is about to write.
 */
export function includes(text: string, from: string, file: string): boolean {
  return text.split(/\r?\n/).some((line) => {
    const match = /^\s*(source-directory|source)\s+(\S+)\s*$/.exec(line);
    if (!match) return false;
    const path = posix.resolve(posix.dirname(from), match[2]);
    if (match[1] === 'source') return globRegExp(path).test(file);
    return globRegExp(path).test(posix.dirname(file)) && RUN_PARTS_NAME.test(posix.basename(file));
  });
}

/**
 * `source-directory <dir of stanza>` appended unless the file (at `from`) already reads `stanza`
 * from there: for a stanza a step writes into interfaces.d.
 */
export function sourceDirectoryFor(interfaces: string, from: string, stanza: string): string {
  if (includes(interfaces, from, stanza)) return interfaces;
  const separator = interfaces === '' || interfaces.endsWith('\n') ? '' : '\n';
  return `${interfaces}${separator}source-directory ${posix.dirname(stanza)}\n`;
}
