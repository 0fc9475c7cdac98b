/**
 * How a value is written into each language this tool generates files in. Templates never quote
 * values themselves: src/engine/templates.ts picks one of these per template by its path, and
 * every `{{name}}` goes through it. An escaper returns text that reads back as exactly the value
 * in its language, or throws Unrenderable when the language cannot hold the value safely.
 */

/** The value cannot be written safely in the template's language; the renderer names the template. */
export class Unrenderable extends Error {}

export type Escaper = (value: unknown) => string;

const LINE_BREAK = /[\r\n\u2028\u2029]/;
/** Control characters but tab and the line breaks (which LINE_BREAK names). */
const CONTROL = /[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]/;

function singleLine(value: unknown, language: string): string {
  const text = String(value);
  if (LINE_BREAK.test(text)) throw new Unrenderable(`contains a line break, which ${language} cannot hold on one line`);
  if (CONTROL.test(text)) throw new Unrenderable(`contains a control character, which ${language} cannot hold`);
  return text;
}

/**
 * POSIX sh: a word that needs no quoting stays bare (so scripts and comments read naturally),
 * anything else is single-quoted, where nothing expands; a ' is closed, escaped and reopened.
 * A rendered value is always one whole word: templates put `{{x}}` outside quotes.
 */
export const shellWord: Escaper = (value) => {
  const text = singleLine(value, 'a shell script');
  if (/^[A-Za-z0-9_@%+=:,./-]+$/.test(text)) return text;
  return `'${text.replaceAll("'", "'\\''")}'`;
};

/**
 * systemd unit files and their drop-ins (and networkd/resolved files, same syntax): `%` starts a
 * specifier and is doubled. Quotes and `$` mean different things in different settings (word
 * splitting, variable expansion in Exec lines), so a value holding one is refused; a backslash
 * is kept (unit names carry `\x2d`) but not at the end, where it would join the next line.
 */
export const systemdValue: Escaper = (value) => {
  const text = singleLine(value, 'a systemd unit');
  if (/["'$]|\\$/.test(text))
    throw new Unrenderable('contains a quote or $, or ends in a backslash, which systemd settings read differently');
  return text.replaceAll('%', '%%');
};

/**
 * NetworkManager keyfiles (GLib key files): backslash escapes as g_key_file_set_value writes them,
 * and `\s` for a leading space, which the parser would otherwise strip.
 */
export const keyfileValue: Escaper = (value) => {
  const escapes: Record<string, string> = { '\\': '\\\\', '\n': '\\n', '\r': '\\r', '\t': '\\t' };
  const text = String(value).replace(/[\\\n\r\t]/g, (c) => escapes[c]);
  if (CONTROL.test(text)) throw new Unrenderable('contains a control character, which a key file cannot hold');
  return text.replace(/^ /, '\\s');
};

/**
 * exports(5): the path is one whitespace-separated field; every character outside a plain set is
 * written as a backslash and three octal digits, which exportfs reads back. The same text is
 * inert when pasted into a shell (the comments carry `sudo mkdir -p <path>`).
 */
export const exportsField: Escaper = (value) =>
  [...String(value)]
    .map((c) => (/^[A-Za-z0-9._/+-]$/.test(c) ? c : [...Buffer.from(c)].map((byte) => `\\${byte.toString(8).padStart(3, '0')}`).join('')))
    .join('');

/** JSON: any value, as JSON.stringify writes it (strings quoted, lists and numbers as such). */
export const jsonValue: Escaper = (value) => JSON.stringify(value);

const YAML_PLAIN = /^[A-Za-z0-9/][A-Za-z0-9 ._/();-]*$/;
// What a YAML 1.2 core-schema parser reads as a number, and 1.1's booleans besides, for older parsers.
const YAML_NOT_STRING =
  /^(?:[-+]?(?:\d+|\.\d+|\d+\.\d*)(?:e[-+]?\d+)?|0x[\da-f]+|0o[0-7]+|[-+]?\.inf|\.nan|y|n|yes|no|true|false|on|off|null)$/i;

/**
 * YAML (netplan): a plain scalar when it cannot be read as anything but that string (no `:` or
 * `#`, no indicator first, not a number, boolean or null), else a double-quoted JSON string,
 * which YAML reads the same way.
 */
export const yamlScalar: Escaper = (value) => {
  const text = String(value);
  if (YAML_PLAIN.test(text) && !/ $/.test(text) && !YAML_NOT_STRING.test(text)) return text;
  return JSON.stringify(text);
};

/**
 * Line-oriented files whose fields are plain words (/etc/hosts, known_hosts, authorized_keys,
 * resolv.conf, modprobe.d, ifupdown, sshd_config): a value is kept on its own line, which is all
 * these formats can promise; what may stand in each field is the config's grammar.
 */
export const lineText: Escaper = (value) => singleLine(value, 'a line-oriented file');

/** Files rendered without any values (C source, a Dockerfile, apt.conf): a `{{name}}` in one is a mistake. */
export const noValues: Escaper = () => {
  throw new Unrenderable('is rendered into a template that takes no values');
};
