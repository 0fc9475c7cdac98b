import type { Operation } from '../engine/operations.js';
import type { Step } from '../engine/step.js';
import { renderTemplate } from '../engine/templates.js';

/** What /etc/hostname holds on HardKernel's stock image. */
const STOCK_HOSTNAME = 'odroid';

// Debian's convention: the host's own name resolves through 127.0.1.1, so `hostname -f` and
// sudo work without a DNS answer for it (the device has no entry in any DNS).
const SELF_LINE = /^(\s*127\.0\.1\.1\s+)([^#]*?)(\s*(?:#.*)?)$/;
const LOCALHOST_LINE = /^\s*127\.0\.0\.1\s/;

/**
 * Makes the first active 127.0.1.1 line name only `hostname` (its spacing and comment stay);
 * without one, adds it after the 127.0.0.1 line, or first.
 */
export function setHostsSelfName(text: string, hostname: string): string {
  const lines = text.split('\n');
  const self = lines.findIndex((line) => SELF_LINE.test(line));
  if (self >= 0) {
    lines[self] = lines[self].replace(SELF_LINE, (_line, address: string, _names: string, rest: string) => address + hostname + rest);
    return lines.join('\n');
  }
  const after = lines.findIndex((line) => LOCALHOST_LINE.test(line)) + 1;
  lines.splice(after, 0, `127.0.1.1\t${hostname}`);
  return lines.join('\n');
}

export const hostname: Step = {
  name: 'hostname',
  summary: 'set the host name in /etc/hostname and /etc/hosts',
  async plan({ config, image }) {
    const view = { hostname: config.hostname };
    const operations: Operation[] = [
      {
        op: 'write',
        on: 'rootfs',
        path: '/etc/hostname',
        content: await renderTemplate('hostname/etc/hostname.mustache', view),
        mode: 0o644,
        uid: 0,
        gid: 0,
      },
    ];
    if ((await image.lstat('rootfs', '/etc/hosts'))?.type === 'file') {
      operations.push({
        op: 'edit',
        on: 'rootfs',
        path: '/etc/hosts',
        what: `127.0.1.1 ${config.hostname}`,
        edit: (text) => setHostsSelfName(text, config.hostname),
      });
    } else {
      operations.push({
        op: 'write',
        on: 'rootfs',
        path: '/etc/hosts',
        content: await renderTemplate('hostname/etc/hosts.mustache', view),
        mode: 0o644,
        uid: 0,
        gid: 0,
      });
    }
    return operations;
  },
  // The configured name is not known here: any name but the stock one counts as set.
  async applied(image) {
    const name = (await image.readText('rootfs', '/etc/hostname'))?.trim();
    return name !== undefined && name !== '' && name !== STOCK_HOSTNAME;
  },
};
