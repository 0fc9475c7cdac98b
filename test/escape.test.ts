import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { afterAll, describe, expect, it } from 'vitest';
import {
  exportsField,
  jsonValue,
  keyfileValue,
  lineText,
  noValues,
  shellWord,
  systemdValue,
  Unrenderable,
  yamlScalar,
} from '../src/formats/escape.js';

/** Where the shell runs: a value that escaped its quoting would make `canary` here. */
const work = mkdtempSync(join(tmpdir(), 'escape-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));

/** What sh makes of each word: one `printf '%s\0'` over all of them, split at the NULs. */
function shellReads(words: string[]): string[] {
  const script = `printf '%s\\0' ${words.join(' ')}`;
  const out = execFileSync('sh', ['-c', script], { encoding: 'utf8', cwd: work });
  expect(existsSync(join(work, 'canary'))).toBe(false);
  return out.split('\0').slice(0, -1);
}

/** Strings rich in what shells treat specially, beside arbitrary ones. */
const hostileText = fc.oneof(
  fc.string({ unit: 'grapheme' }),
  fc.string({ unit: fc.constantFrom(...`'"\`$(){}[]|&;<>*?~#!\\ %=:,.-_ab\t`.split('')) }),
  fc.constantFrom('', '-n', '$(touch canary)', '`touch canary`', "a'b", "'", "''", '\\', '~root', '*', 'a b'),
);

describe('shellWord', () => {
  it('leaves plain words bare and quotes the rest', () => {
    expect(shellWord('/srv/c2-builder')).toBe('/srv/c2-builder');
    expect(shellWord(2376)).toBe('2376');
    expect(shellWord('')).toBe("''");
    expect(shellWord("a'$(b)")).toBe("'a'\\''$(b)'");
  });

  it('gives sh back exactly the value, for any value without a line break or NUL', () => {
    fc.assert(
      fc.property(
        fc.array(
          hostileText.filter((text) => !/[\x00-\x08\x0a-\x1f\x7f\u2028\u2029]/.test(text)),
          { minLength: 1, maxLength: 200 },
        ),
        (values) => {
          expect(shellReads(values.map(shellWord))).toEqual(values);
        },
      ),
      { numRuns: 20 },
    );
  });

  it('refuses line breaks and control characters, which would leave a comment or a line', () => {
    for (const value of ['a\nb', 'a\rb', 'a\u2028b', 'a\0b', 'a\x1bb'])
      expect(() => shellWord(value), JSON.stringify(value)).toThrow(Unrenderable);
  });
});

describe('the other escapers', () => {
  it('systemd: doubles %, refuses quotes, $ and a final backslash, keeps \\x2d', () => {
    expect(systemdValue('50%')).toBe('50%%');
    expect(systemdValue('run-builder\\x2dstorage-share.mount')).toBe('run-builder\\x2dstorage-share.mount');
    for (const value of ['a"b', "a'b", '$HOME', 'a\\', 'a\nExecStart=/bin/sh'])
      expect(() => systemdValue(value), value).toThrow(Unrenderable);
  });

  it('keyfile: escapes backslashes, line breaks, tabs and a leading space as GLib does', () => {
    expect(keyfileValue(' a\\b\nc\td\r')).toBe('\\sa\\\\b\\nc\\td\\r');
    expect(keyfileValue('c2 builder')).toBe('c2 builder');
  });

  it('exports(5): octal escapes for everything but plain path characters, inert in a shell', () => {
    expect(exportsField('/srv/c2-builder_1.0')).toBe('/srv/c2-builder_1.0');
    expect(exportsField("/srv/a b'$(x)é")).toBe('/srv/a\\040b\\047\\044\\050x\\051\\303\\251');
    expect(exportsField('/srv/a\nb')).toBe('/srv/a\\012b');
  });

  it('JSON: a whole JSON value that parses back to the value', () => {
    fc.assert(
      fc.property(fc.oneof(fc.string(), fc.array(fc.string()), fc.integer()), (value) => {
        expect(JSON.parse(jsonValue(value))).toEqual(value);
      }),
    );
  });

  it('YAML: plain when it can only be that string, else a double-quoted JSON string', () => {
    expect(yamlScalar('10.0.0.2/24')).toBe('10.0.0.2/24');
    expect(yamlScalar('Written by x (usb-gadget step); a rebuild replaces it.')).toBe(
      'Written by x (usb-gadget step); a rebuild replaces it.',
    );
    for (const value of ['yes', 'No', 'null', '1.5', '0x1f', '12', 'a: b', 'a #b', '- a', '[a]', '', 'a ', 'a\nb']) {
      expect(yamlScalar(value), value).toBe(JSON.stringify(value));
    }
  });

  it('line-oriented files: one line, no control characters', () => {
    expect(lineText('ssh-ed25519 AAAA me@laptop')).toBe('ssh-ed25519 AAAA me@laptop');
    expect(lineText('127.0.1.1\tc2')).toBe('127.0.1.1\tc2');
    for (const value of ['a\nb', 'a\rb', 'a\0b', 'a\x1b[2Jb']) expect(() => lineText(value), JSON.stringify(value)).toThrow(Unrenderable);
  });

  it('no values: any value is refused', () => {
    expect(() => noValues('x')).toThrow(/takes no values/);
  });
});
