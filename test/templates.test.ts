import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { UserError } from '../src/errors.js';
import { renderTemplate } from '../src/engine/templates.js';

const dir = mkdtempSync(path.join(tmpdir(), 'templates-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
writeFileSync(path.join(dir, 'line.mustache'), 'echo "{{greeting}}" >{{out.path}} && true\n');
const userDir = path.join(dir, 'user');
mkdirSync(path.join(userDir, 'step/etc'), { recursive: true });
mkdirSync(path.join(dir, 'step/etc'), { recursive: true });
writeFileSync(path.join(dir, 'step/etc/motd.mustache'), 'stock {{greeting}}\n');
writeFileSync(path.join(userDir, 'step/etc/motd.mustache'), 'mine: {{greeting}} to {{out.path}}\n');
writeFileSync(path.join(userDir, 'line.mustache'), 'echo {{nickname}}\n');

describe('renderTemplate', () => {
  it('writes values as they are, without HTML escaping', async () => {
    const text = await renderTemplate('line.mustache', { greeting: 'a & <b>', out: { path: '/tmp/x' } }, dir);
    expect(text).toBe('echo "a & <b>" >/tmp/x && true\n');
  });

  it('leaves the global mustache escaping alone', async () => {
    const { default: Mustache } = await import('mustache');
    await renderTemplate('line.mustache', { greeting: '&', out: { path: '' } }, dir);
    expect(Mustache.render('{{x}}', { x: '&' })).toBe('&amp;');
  });

  it('refuses a view that lacks a name the template uses', async () => {
    await expect(renderTemplate('line.mustache', { greeting: 'hi', out: {} }, dir)).rejects.toThrow(/uses out\.path/);
  });

  it('finds the repository templates from any working directory', async () => {
    const text = await renderTemplate('readonly-root/sbin/overlay-init.mustache', { tmpfsSize: '50%', realInit: '/sbin/init' });
    expect(text.startsWith('#!/bin/sh\n')).toBe(true);
  });

  it('renders the user\'s copy under the user template dir instead of the repository\'s', async () => {
    const view = { greeting: 'hello', out: { path: '/dev/tty1' } };
    expect(await renderTemplate('step/etc/motd.mustache', view, dir, userDir)).toBe('mine: hello to /dev/tty1\n');
    expect(await renderTemplate('step/etc/motd.mustache', view, dir, path.join(dir, 'no-such-dir'))).toBe('stock hello\n');
  });

  it('blames the user\'s copy, in one line, when it uses a name the step does not provide', async () => {
    const render = renderTemplate('line.mustache', { greeting: 'hi', out: { path: '/x' } }, dir, userDir);
    await expect(render).rejects.toThrow(UserError);
    await expect(render).rejects.toThrow(/user\/line\.mustache uses nickname, which the step does not provide \(it provides: greeting, out\)/);
    await expect(render).rejects.not.toThrow(/\n/);
  });
});
