/**
 * INI files: config.ini (C4/N2, `;` comments, read by U-Boot's `ini` command) and boot.ini.default
 * (C2, `#` comments, read by the bootini package when it regenerates boot.ini on upgrades).
 * Edits keep every byte they do not need to change.
 */
import { UserError } from '../errors.js';
import { checkSettingName, escapeRegExp, fileEol } from './text.js';

export interface IniSetting {
  section: string;
  key: string;
  value: string;
}

interface Line {
  body: string;
  eol: string;
}

function splitLines(text: string): Line[] {
  return text.split(/(?<=\n)/).map((piece) => {
    const body = piece.replace(/\r?\n$/, '');
    return { body, eol: piece.slice(body.length) };
  });
}

const joinLines = (lines: Line[]) => lines.map((l) => l.body + l.eol).join('');

const SECTION_HEADER = /^\s*\[([^\]]*)\]\s*$/;

interface SectionScan {
  header?: number;
  /** the last non-blank line of the section, where a new key goes */
  lastContent?: number;
  active?: number;
  example?: number;
}

function scanSection(lines: Line[], section: string, key: string, exampleMarker: string | undefined): SectionScan {
  const activeLine = new RegExp(`^\\s*${escapeRegExp(key)}\\s*=`);
  const exampleLine =
    exampleMarker === undefined ? undefined : new RegExp(`^\\s*${escapeRegExp(exampleMarker)}\\s*${escapeRegExp(key)}\\s*=`);
  const scan: SectionScan = {};
  let current = ''; // lines before the first header belong to no section
  lines.forEach(({ body }, i) => {
    const header = SECTION_HEADER.exec(body);
    if (header) {
      current = header[1].trim();
      if (current === section) scan.header ??= i;
      if (current === section) scan.lastContent = i;
      return;
    }
    if (current !== section || body.trim() === '') return;
    scan.lastContent = i;
    if (activeLine.test(body)) scan.active = i;
    else if (exampleLine?.test(body)) scan.example = i;
  });
  return scan;
}

/**
 * Sets key=value in a section: replaces the last active assignment, else uncomments the last
 * commented example (only when `exampleMarker` is given), else appends to the end of the section,
 * else adds the section at the end of the file.
 */
function setIniValue(text: string, setting: IniSetting, exampleMarker?: string): string {
  const { section, key, value } = setting;
  checkSettingName(key);
  if (/[\r\n]/.test(value)) throw new UserError(`value for ${key} must be one line: ${JSON.stringify(value)}`);
  const lines = splitLines(text);
  const eol = fileEol(text);
  const scan = scanSection(lines, section, key, exampleMarker);
  if (scan.active !== undefined) {
    const line = lines[scan.active];
    line.body = line.body.replace(/=.*$/, () => `=${value}`);
  } else if (scan.example !== undefined) {
    lines[scan.example].body = `${key}=${value}`;
  } else if (scan.lastContent !== undefined) {
    const anchor = lines[scan.lastContent];
    const newEol = anchor.eol; // a last line without newline stays last without one
    if (anchor.eol === '') anchor.eol = eol;
    lines.splice(scan.lastContent + 1, 0, { body: `${key}=${value}`, eol: newEol });
  } else {
    const last = lines[lines.length - 1];
    if (last.body !== '' && last.eol === '') last.eol = eol;
    const separator = text.trim() === '' ? '' : eol;
    return `${joinLines(lines)}${separator}[${section}]${eol}${key}=${value}${eol}`;
  }
  return joinLines(lines);
}

/** Sets key=value in a config.ini section (C4/N2 boot.ini imports [generic] with `ini generic`). */
export function setIniKey(text: string, section: string, key: string, value: string): string {
  return setIniValue(text, { section, key, value });
}

/** The last active value of key in section, trimmed; undefined if the key is unset there. */
export function getIniKey(text: string, section: string, key: string): string | undefined {
  const lines = splitLines(text);
  const { active } = scanSection(lines, section, key, undefined);
  return active === undefined ? undefined : lines[active].body.replace(/^[^=]*=/, '').trim();
}

/**
 * Makes a boot.ini.default override active: the bootini package copies these keys into boot.ini
 * each time an upgrade rewrites it, so a setting made only in boot.ini would be lost.
 */
export function setPersistentOverride(text: string, key: string, value: string): string {
  return setIniValue(text, { section: 'general', key, value }, '#');
}
