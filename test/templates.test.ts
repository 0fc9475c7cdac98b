import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { renderTemplate } from '../src/templates.js';

const dir = mkdtempSync(path.join(tmpdir(), 'templates-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
writeFileSync(path.join(dir, 'line.mustache'), 'echo "{{greeting}}" >{{out.path}} && true\n');

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
});
