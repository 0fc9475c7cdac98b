import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { renderTemplate, TEMPLATE_KINDS, TEMPLATES_DIR, templateKind } from '../src/engine/templates.js';
import { UserError } from '../src/errors.js';

const dir = mkdtempSync(path.join(tmpdir(), 'templates-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
writeFileSync(path.join(dir, 'line.sh.mustache'), 'echo {{greeting}} >{{out.path}} && true\n');
const userDir = path.join(dir, 'user');
mkdirSync(path.join(userDir, 'step/etc'), { recursive: true });
mkdirSync(path.join(dir, 'step/etc'), { recursive: true });
writeFileSync(path.join(dir, 'step/etc/resolv.conf.mustache'), 'stock {{greeting}}\n');
writeFileSync(path.join(userDir, 'step/etc/resolv.conf.mustache'), 'mine: {{greeting}} to {{out.path}}\n');
writeFileSync(path.join(userDir, 'line.sh.mustache'), 'echo {{nickname}}\n');
writeFileSync(path.join(dir, 'raw.sh.mustache'), '{{#list}}echo {{{.}}}{{/list}}\n');
writeFileSync(path.join(dir, 'motd.mustache'), '{{greeting}}\n');
mkdirSync(path.join(dir, 'step/etc/ssh'), { recursive: true });
writeFileSync(path.join(dir, 'step/etc/ssh/sshd_config.mustache'), '# {{greeting}}\nPermitRootLogin no\n');

describe('renderTemplate', () => {
  it("writes values through the escaper of the template's kind, not HTML escaping", async () => {
    const text = await renderTemplate('line.sh.mustache', { greeting: "a & <b> 'c'", out: { path: '/tmp/x' } }, dir);
    expect(text).toBe("echo 'a & <b> '\\''c'\\''' >/tmp/x && true\n");
  });

  it('leaves the global mustache escaping alone', async () => {
    const { default: Mustache } = await import('mustache');
    await renderTemplate('line.sh.mustache', { greeting: '&', out: { path: '' } }, dir);
    expect(Mustache.render('{{x}}', { x: '&' })).toBe('&amp;');
  });

  it('refuses a view that lacks a name the template uses', async () => {
    await expect(renderTemplate('line.sh.mustache', { greeting: 'hi', out: {} }, dir)).rejects.toThrow(/uses out\.path/);
  });

  it('finds the repository templates from any working directory', async () => {
    const text = await renderTemplate('readonly-root/sbin/overlay-init.mustache', { tmpfsSize: '50%', realInit: '/sbin/init' });
    expect(text.startsWith('#!/bin/sh\n')).toBe(true);
  });

  it("renders the user's copy under the user template dir instead of the repository's", async () => {
    const view = { greeting: 'hello', out: { path: '/dev/tty1' } };
    expect(await renderTemplate('step/etc/resolv.conf.mustache', view, dir, userDir)).toBe('mine: hello to /dev/tty1\n');
    expect(await renderTemplate('step/etc/resolv.conf.mustache', view, dir, path.join(dir, 'no-such-dir'))).toBe('stock hello\n');
  });

  it("blames the user's copy, in one line, when it uses a name the step does not provide", async () => {
    const render = renderTemplate('line.sh.mustache', { greeting: 'hi', out: { path: '/x' } }, dir, userDir);
    await expect(render).rejects.toThrow(UserError);
    await expect(render).rejects.toThrow(
      /user\/line\.sh\.mustache uses nickname, which the step does not provide \(it provides: greeting, out\)/,
    );
    await expect(render).rejects.not.toThrow(/\n/);
  });

  it("refuses a value the template's language cannot hold, in one line naming the template", async () => {
    const render = renderTemplate('step/etc/ssh/sshd_config.mustache', { greeting: 'hi\nPermitRootLogin yes' }, dir);
    await expect(render).rejects.toThrow(UserError);
    await expect(render).rejects.toThrow(
      /^template step\/etc\/ssh\/sshd_config\.mustache: the value "hi\\nPermitRootLogin yes" contains a line break/,
    );
    await expect(render).rejects.not.toThrow(/\n/);
  });

  it('refuses {{{name}}} and {{& name}}, which would skip the escaper, even inside a section', async () => {
    await expect(renderTemplate('raw.sh.mustache', { list: ['$(reboot)'] }, dir)).rejects.toThrow(/raw\.sh\.mustache renders \. unescaped/);
  });

  it('refuses a template whose path names no kind', async () => {
    await expect(renderTemplate('motd.mustache', { greeting: 'hi' }, dir)).rejects.toThrow(/motd\.mustache has no kind in TEMPLATE_KINDS/);
  });
});

describe('TEMPLATE_KINDS', () => {
  const templates = (readdirSync(TEMPLATES_DIR, { recursive: true, withFileTypes: true }) as import('node:fs').Dirent[])
    .filter((entry) => entry.isFile() && entry.name.endsWith('.mustache'))
    .map((entry) => path.relative(TEMPLATES_DIR, path.join(entry.parentPath, entry.name)));

  it('gives every template in templates/ a kind', () => {
    expect(templates.length).toBeGreaterThan(20);
    const kinds = Object.fromEntries(templates.map((template) => [template, templateKind(template).kind]));
    expect(kinds).toMatchObject({
      'docker/usr/local/sbin/builder-storage.mustache': 'POSIX shell',
      'readonly-root/sbin/overlay-init.mustache': 'POSIX shell',
      'host-kit/nat.sh.mustache': 'POSIX shell',
      'host-kit/README.md.mustache': 'POSIX shell',
      'docker/etc/systemd/system/docker.service.mustache': 'systemd unit',
      'usb-gadget/etc/systemd/network/60-usb0.network.mustache': 'systemd unit',
      'usb-gadget/etc/systemd/resolved.conf.d/usb0.conf.mustache': 'systemd unit',
      'host-kit/device.nmconnection.mustache': 'NetworkManager keyfile',
      'host-kit/exports.mustache': 'exports(5)',
      'docker/etc/docker/daemon.json.mustache': 'JSON',
      'usb-gadget/etc/netplan/60-usb0.yaml.mustache': 'YAML',
      'remote-access/root/.ssh/authorized_keys.mustache': 'line-oriented text',
      'host-kit/bench/bench.c.mustache': 'no values',
    });
  });

  it('never has a shell template quote a value itself: a value is one whole word', () => {
    const shell = TEMPLATE_KINDS.find(({ kind }) => kind === 'POSIX shell')!;
    for (const template of templates.filter((relPath) => shell.paths.test(relPath.replace(/\.mustache$/, '')))) {
      const text = readFileSync(path.join(TEMPLATES_DIR, template), 'utf8');
      expect(text, template).not.toMatch(/['"][^'"\n]*\{\{[^#/^][^}]*\}\}[^'"\n]*['"]/);
    }
  });
});
