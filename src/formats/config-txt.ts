/**
 * config.txt: the Raspberry Pi firmware's settings. Lines are `key=value`; `[pi4]`, `[cm5]`, ...
 * make the lines after them conditional until the next filter, and `[all]` ends every filter. A
 * line applies to every board before the first filter and under `[all]`; for a key set more than
 * once the last line read wins (dtoverlay and dtparam lines add up instead). This tool writes its
 * lines at the end, under a final `[all]`, so they win and leave the conditional sections alone.
 * Edits keep every byte they do not need to change.
 */
import { UserError } from '../errors.js';
import { getIniKey, setIniKey } from './ini.js';
import { escapeRegExp, fileEol } from './text.js';

const FILTER = /^\s*\[([^\]]*)\]\s*$/;

function checkLine(line: string): void {
  if (/[\r\n]/.test(line) || line.trim() === '')
    throw new UserError(`a config.txt line must be one non-empty line: ${JSON.stringify(line)}`);
}

/** Each line with whether it applies to every board (before any filter, or under [all]). */
function unconditional(text: string): { line: string; all: boolean }[] {
  let all = true;
  return text.split(/\r?\n/).map((line) => {
    const filter = FILTER.exec(line);
    if (filter) all = filter[1].trim() === 'all';
    return { line, all: all && !filter };
  });
}

/** Whether `line` (e.g. `dtoverlay=dwc2,dr_mode=peripheral`) is active for every board. */
export function hasConfigTxtLine(text: string, line: string): boolean {
  return unconditional(text).some((l) => l.all && l.line.trim() === line);
}

/** The value every board gets for `key`: the last unconditional assignment. */
export function getConfigTxtKey(text: string, key: string): string | undefined {
  let value: string | undefined;
  for (const { line, all } of unconditional(text)) {
    const match = /^\s*([^=#\s]+)\s*=(.*)$/.exec(line);
    if (all && match?.[1] === key) value = match[2].trim();
  }
  return value;
}

/** Whether the file ends in an [all] section (a line added at the end applies to every board). */
function endsInAll(text: string): boolean {
  const filters = text.split(/\r?\n/).flatMap((line) => FILTER.exec(line)?.[1].trim() ?? []);
  return filters.length === 0 || filters[filters.length - 1] === 'all';
}

/** Appends lines at the end of the file, under a new `[all]` when the file ends in a filter. */
function append(text: string, lines: string[]): string {
  const eol = fileEol(text);
  const body = text === '' || text.endsWith('\n') ? text : `${text}${eol}`;
  const header = endsInAll(text) ? [] : ['[all]'];
  return `${body}${[...header, ...lines].map((line) => `${line}${eol}`).join('')}`;
}

/**
 * Sets `key=value` for every board: the last assignment under the final [all] is replaced in
 * place, else the line is added there. `[all]` sections are read like INI sections, so the one
 * INI editor does it when the file already ends in one.
 */
export function setConfigTxtKey(text: string, key: string, value: string): string {
  checkLine(`${key}=${value}`);
  if (getConfigTxtKey(text, key) === value) return text;
  return endsInAll(text) && /^\s*\[all\]\s*$/m.test(text) ? setIniKey(text, 'all', key, value) : append(text, [`${key}=${value}`]);
}

/** Removes every `key=` line under [all] that `setConfigTxtKey` could have written: back to the default. */
export function unsetConfigTxtKey(text: string, key: string): string {
  if (getIniKey(text, 'all', key) === undefined) return text;
  const assignment = new RegExp(`^\\s*${escapeRegExp(key)}\\s*=`);
  let inAll = false;
  return text
    .split(/(?<=\n)/)
    .filter((piece) => {
      const filter = FILTER.exec(piece.replace(/\r?\n$/, ''));
      if (filter) inAll = filter[1].trim() === 'all';
      return !(inAll && !filter && assignment.test(piece));
    })
    .join('');
}

/** Adds a line that applies to every board (a dtoverlay), unless one already does. */
export function addConfigTxtLine(text: string, line: string): string {
  checkLine(line);
  return hasConfigTxtLine(text, line) ? text : append(text, [line]);
}

/**
 * Comments out every unconditional `line` (e.g. `dtoverlay=vc4-kms-v3d`), with `why` on the line
 * above; conditional copies of it are left alone.
 */
export function commentOutConfigTxtLine(text: string, line: string, why: string): string {
  checkLine(line);
  if (!hasConfigTxtLine(text, line)) return text;
  let all = true;
  return text
    .split(/(?<=\n)/)
    .map((piece) => {
      const body = piece.replace(/\r?\n$/, '');
      const filter = FILTER.exec(body);
      if (filter) all = filter[1].trim() === 'all';
      if (filter || !all || body.trim() !== line) return piece;
      const eol = piece.slice(body.length) || fileEol(text);
      return `# ${why}${eol}#${body}${piece.slice(body.length)}`;
    })
    .join('');
}
