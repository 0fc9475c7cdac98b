/**
 * Text edits of the C2's boot.ini, a U-Boot hush script: read and set `setenv` values and the
 * kernel's bootargs, check U-Boot's limits. Every edit changes only the bytes it must, so a diff
 * against the stock file shows exactly what the build did.
 */
import { UserError } from '../errors.js';
import { checkSettingName, escapeRegExp, fileEol } from './text.js';

export const C2_BOOT_INI_HEADER = 'ODROIDC2-UBOOT-CONFIG';

/** Whether the file is a C2's boot.ini: its first line is the header U-Boot looks for. */
export const isC2BootIni = (text: string) => text.split('\n', 1)[0].replace(/\r$/, '') === C2_BOOT_INI_HEADER;
/** The C2's U-Boot loads at most this much of boot.ini; anything after it is silently dropped. */
export const BOOT_INI_MAX_BYTES = 64 * 1024;

// ---------------------------------------------------------------------------------------------
// boot.ini: a small model of the hush syntax HardKernel's scripts use (words, quotes, `;`,
// `#` comments, if/then/elif/else/fi, loops), enough to find statements and their byte offsets.

interface Segment {
  text: string;
  /** false for single-quoted and backslash-escaped text, which hush never expands */
  expand: boolean;
}
interface Word {
  start: number;
  end: number;
  segments: Segment[];
}
interface Statement {
  words: Word[];
  /** how many if/loop blocks enclose it; only depth-0 setenv lines are the active settings */
  depth: number;
}

const BLOCK_OPENERS = new Set(['if', 'for', 'while', 'until']);
const BLOCK_CLOSERS = new Set(['fi', 'done']);

const literal = (word: Word) => word.segments.map((s) => s.text).join('');

function parseScript(text: string): Statement[] {
  const statements: Statement[] = [];
  let words: Word[] = [];
  let word: Word | undefined;
  let depth = 0;

  const append = (piece: string, expand: boolean, start: number, end: number): Word => {
    const current: Word = word ?? { start, end, segments: [] };
    word = current;
    const last = current.segments.at(-1);
    if (last && last.expand === expand) last.text += piece;
    else current.segments.push({ text: piece, expand });
    current.end = end;
    return current;
  };
  const endWord = () => {
    if (word) words.push(word);
    word = undefined;
  };
  const endStatement = () => {
    endWord();
    if (words.length === 0) return;
    const keyword = literal(words[0]);
    if (BLOCK_CLOSERS.has(keyword)) depth = Math.max(0, depth - 1);
    statements.push({ words, depth });
    if (BLOCK_OPENERS.has(keyword)) depth++;
    words = [];
  };

  let i = 0;
  while (i < text.length) {
    const c = text[i];
    if (c === '\\' && text.startsWith('\n', i + 1)) {
      i += 2; // line continuation
    } else if (c === '\\' && text.startsWith('\r\n', i + 1)) {
      i += 3;
    } else if (c === '\n' || c === ';') {
      endStatement();
      i++;
    } else if (c === ' ' || c === '\t' || c === '\r') {
      endWord();
      i++;
    } else if (c === '#' && !word) {
      while (i < text.length && text[i] !== '\n') i++;
    } else if (c === "'") {
      const close = text.indexOf("'", i + 1);
      if (close < 0) throw unterminatedQuote(text, i);
      append(text.slice(i + 1, close), false, i, close + 1);
      i = close + 1;
    } else if (c === '"') {
      const start = i;
      i++;
      const quoted = append('', true, start, i); // `""` is still a (empty) word
      while (i < text.length && text[i] !== '"') {
        if (text[i] === '\\' && '"\\$`'.includes(text[i + 1] ?? '')) {
          append(text[i + 1], false, start, i + 2);
          i += 2;
        } else {
          append(text[i], true, start, i + 1);
          i++;
        }
      }
      if (i >= text.length) throw unterminatedQuote(text, start);
      i++;
      quoted.end = i;
    } else if (c === '\\' && i + 1 < text.length) {
      append(text[i + 1], false, i, i + 2);
      i += 2;
    } else {
      append(c, true, i, i + 1);
      i++;
    }
  }
  endStatement();
  return statements;
}

function unterminatedQuote(text: string, at: number): UserError {
  const line = text.slice(0, at).split('\n').length;
  return new UserError(`boot.ini line ${line}: quote ${text[at]} is never closed`);
}

function expandVars(text: string, env: Map<string, string>): string {
  return text.replace(
    /\$\{([^}]*)\}|\$([A-Za-z_][A-Za-z0-9_]*)/g,
    (_match, braced?: string, bare?: string) => env.get(braced ?? bare ?? '') ?? '',
  );
}

const wordValue = (word: Word, env: Map<string, string>) =>
  word.segments.map((s) => (s.expand ? expandVars(s.text, env) : s.text)).join('');

const isSetenvOf = (statement: Statement, name: string) =>
  statement.words.length >= 2 && literal(statement.words[0]) === 'setenv' && literal(statement.words[1]) === name;

/** The setenv that decides the value: the last one outside any if/loop (U-Boot runs top to bottom). */
function activeSetenv(statements: Statement[], name: string): Statement | undefined {
  for (let i = statements.length - 1; i >= 0; i--) {
    if (statements[i].depth === 0 && isSetenvOf(statements[i], name)) return statements[i];
  }
  return undefined;
}

function checkSetenvValue(name: string, value: string): void {
  if (/["\\\r\n]/.test(value)) {
    throw new UserError(`boot.ini value for ${name} must not contain double quotes, backslashes or line breaks: ${JSON.stringify(value)}`);
  }
}

/** Inserts a whole line at a line boundary (or after the last line if the file lacks a final newline). */
function insertLine(text: string, offset: number, line: string): string {
  const eol = fileEol(text);
  const needsBreak = offset > 0 && text[offset - 1] !== '\n';
  const inserted = needsBreak ? `${eol}${line}` : `${line}${eol}`;
  return text.slice(0, offset) + inserted + text.slice(offset);
}

const lineStart = (text: string, offset: number) => text.lastIndexOf('\n', offset - 1) + 1;

/**
 * Where a missing `setenv name` goes: under its commented alternatives if the file has any (that is
 * where a person would look), else just above the boot arguments, which must see every variable.
 */
function setenvInsertionOffset(text: string, statements: Statement[], name: string): number {
  const commented = new RegExp(`^[ \\t]*#[ \\t]*setenv[ \\t]+${escapeRegExp(name)}(?![^ \\t\\r\\n])[^\\n]*(\\n|$)`, 'gm');
  let afterCommented: number | undefined;
  for (const match of text.matchAll(commented)) afterCommented = match.index + match[0].length;
  if (afterCommented !== undefined) return afterCommented;

  const anchors: number[] = [];
  const heading = /^[ \t]*#[ \t]*Boot Arguments/im.exec(text);
  if (heading) anchors.push(heading.index);
  const bootargs = statements.find((s) => s.depth === 0 && isSetenvOf(s, 'bootargs'));
  if (bootargs) anchors.push(lineStart(text, bootargs.words[0].start));
  if (anchors.length === 0) {
    throw new UserError(`boot.ini has no "# setenv ${name}", "# Boot Arguments" or "setenv bootargs" line to put setenv ${name} near`);
  }
  return Math.min(...anchors);
}

/**
 * Makes the active `setenv name "value"` carry `value`. Edits the last setenv outside if-blocks in
 * place (its comment and line ending stay); commented alternatives and setenv inside if-lines are
 * left alone. Without an active line, one is inserted (see setenvInsertionOffset).
 */
export function setEnv(text: string, name: string, value: string): string {
  checkSettingName(name);
  checkSetenvValue(name, value);
  const quoted = `"${value}"`;
  const statements = parseScript(text);
  const statement = activeSetenv(statements, name);
  if (!statement) return insertLine(text, setenvInsertionOffset(text, statements, name), `setenv ${name} ${quoted}`);
  const [, nameWord, ...valueWords] = statement.words;
  const first = valueWords.at(0);
  const last = valueWords.at(-1);
  if (!first || !last) return `${text.slice(0, nameWord.end)} ${quoted}${text.slice(nameWord.end)}`;
  return text.slice(0, first.start) + quoted + text.slice(last.end);
}

/** The value the active setenv assigns, unexpanded (`${condev}` stays as written); undefined if none. */
export function getEnv(text: string, name: string): string | undefined {
  const statement = activeSetenv(parseScript(text), name);
  if (!statement || statement.words.length < 3) return undefined;
  return statement.words.slice(2).map(literal).join(' ');
}

// Boot arguments are edited as the literal tokens of the setenv bootargs line: a `${condev}`
// token is one opaque token, never split into what it expands to.

const argKey = (arg: string) => arg.split('=', 1)[0];

function editBootArgs(text: string, edit: (value: string) => string): string {
  const value = getEnv(text, 'bootargs');
  if (value === undefined) throw new UserError('boot.ini has no active setenv bootargs line');
  const next = edit(value);
  return next === value ? text : setEnv(text, 'bootargs', next);
}

/** Replaces the first token with this key by `replacement` (or drops it) and drops any later ones. */
function replaceArg(value: string, key: string, replacement: string | undefined): { value: string; found: boolean } {
  let found = false;
  const edited = value.replace(/(^|\s+)(\S+)/g, (match, space: string, token: string) => {
    if (argKey(token) !== key) return match;
    const keep = !found && replacement !== undefined;
    found = true;
    return keep ? space + replacement : '';
  });
  return { value: /^\s/.test(value) ? edited : edited.trimStart(), found };
}

/**
 * Adds `arg` (e.g. `init=/sbin/overlay-init`) to the bootargs line, or replaces the value of an arg
 * with the same key. Note the kernel accepts some keys (console=) more than once; this keeps one.
 */
export function addBootArg(text: string, arg: string): string {
  if (!/^\S+$/.test(arg)) throw new UserError(`a boot argument must be one word without spaces: ${JSON.stringify(arg)}`);
  return editBootArgs(text, (value) => {
    const replaced = replaceArg(value, argKey(arg), arg);
    if (replaced.found) return replaced.value;
    const base = value.trimEnd();
    return base ? `${base} ${arg}` : arg;
  });
}

/** Removes every bootargs token with this key (`init` removes `init=...`, `ro` removes `ro`). */
export function removeBootArg(text: string, key: string): string {
  return editBootArgs(text, (value) => replaceArg(value, key, undefined).value);
}

/** The literal tokens of the active bootargs line, `${var}` references unexpanded. */
export function getBootArgs(text: string): string[] {
  return (getEnv(text, 'bootargs') ?? '').split(/\s+/).filter(Boolean);
}

const BOOT_COMMANDS = new Set(['booti', 'bootm', 'bootz']);

/**
 * Inserts whole lines just above the script's boot command (the first booti/bootm/bootz outside
 * any if-block). There the kernel and its device tree are loaded, so `fdt rm` lines edit the tree
 * the kernel gets, as the stock `nographics` lines do. Refuses a script that boots nothing, or
 * whose `fdt addr` does not come before the boot command (every fdt command would fail).
 */
export function insertBeforeBoot(text: string, lines: string[]): string {
  const statements = parseScript(text);
  const boot = statements.findIndex((s) => s.depth === 0 && BOOT_COMMANDS.has(literal(s.words[0])));
  if (boot < 0) throw new UserError('boot.ini has no booti, bootm or bootz command to insert device-tree edits before');
  const loadsTree = statements
    .slice(0, boot)
    .some((s) => s.depth === 0 && literal(s.words[0]) === 'fdt' && s.words[1] && literal(s.words[1]) === 'addr');
  if (!loadsTree) throw new UserError('boot.ini has no "fdt addr" before its boot command, so device-tree edits there would fail');
  return insertLine(text, lineStart(text, statements[boot].words[0].start), lines.join(fileEol(text)));
}

/** `test a = b`, `test a != b`, `test -z a`, `test -n a`; anything else counts as false. */
function evaluateTest(words: Word[], env: Map<string, string>): boolean {
  if (words.length === 0 || literal(words[0]) !== 'test') return false;
  const args = words.slice(1).map((w) => wordValue(w, env));
  if (args.length === 3 && args[1] === '=') return args[0] === args[2];
  if (args.length === 3 && args[1] === '!=') return args[0] !== args[2];
  if (args.length === 2 && args[0] === '-z') return args[1] === '';
  if (args.length === 2 && args[0] === '-n') return args[1] !== '';
  return false;
}

/**
 * The variables after U-Boot ran the script, as far as setenv and test decide them. Like hush,
 * `${var}` in a setenv is expanded when that line runs. Loop bodies are skipped and other
 * commands (fdt, hdmitx, load) have no effect here: HardKernel's C2 script sets no variables in them.
 */
function runSetenvs(text: string): Map<string, string> {
  const env = new Map<string, string>();
  const blocks: { active: boolean; taken: boolean }[] = [];
  const running = () => blocks.every((b) => b.active);
  for (const { words } of parseScript(text)) {
    const keyword = literal(words[0]);
    let command = words;
    if (keyword === 'if') {
      const cond = evaluateTest(words.slice(1), env);
      blocks.push({ active: cond, taken: cond });
      continue;
    }
    if (keyword === 'for' || keyword === 'while' || keyword === 'until') {
      blocks.push({ active: false, taken: true });
      continue;
    }
    if (BLOCK_CLOSERS.has(keyword)) {
      blocks.pop();
      continue;
    }
    const block = blocks.at(-1);
    if (keyword === 'elif' && block) {
      block.active = !block.taken && evaluateTest(words.slice(1), env);
      block.taken ||= block.active;
      continue;
    }
    if (keyword === 'else' && block) {
      block.active = !block.taken;
      block.taken = true;
    }
    if (['then', 'else', 'do'].includes(keyword)) command = words.slice(1);
    if (!running() || command.length < 2 || literal(command[0]) !== 'setenv') continue;
    const name = wordValue(command[1], env);
    if (command.length === 2) env.delete(name);
    else
      env.set(
        name,
        command
          .slice(2)
          .map((w) => wordValue(w, env))
          .join(' '),
      );
  }
  return env;
}

/** The kernel command line U-Boot would pass: bootargs with every `${var}` expanded (unset is empty). */
export function expandBootArgs(text: string): string {
  return (runSetenvs(text).get('bootargs') ?? '').split(/\s+/).filter(Boolean).join(' ');
}

/** Run after editing: the C2's U-Boot ignores a boot.ini without the header and truncates at 64 KiB. */
export function validateBootIni(text: string): void {
  const firstLine = text.split('\n', 1)[0].replace(/\r$/, '');
  if (firstLine !== C2_BOOT_INI_HEADER) {
    throw new UserError(
      `boot.ini must start with the line ${C2_BOOT_INI_HEADER}, the C2's U-Boot ignores it otherwise (found ${JSON.stringify(firstLine.slice(0, 40))})`,
    );
  }
  const bytes = Buffer.byteLength(text, 'utf8');
  if (bytes > BOOT_INI_MAX_BYTES) {
    throw new UserError(`boot.ini is ${bytes} bytes but the C2's U-Boot reads only the first ${BOOT_INI_MAX_BYTES}`);
  }
}
