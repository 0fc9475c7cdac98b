import type { Operation } from '../engine/operations.js';
import type { Step } from '../engine/step.js';
import { renderTemplate } from '../engine/templates.js';

/** What /etc/hostname holds on HardKernel's stock image. */
const STOCK_HOSTNAME = 'odroid';

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
        change: { change: 'hosts-self-name', hostname: config.hostname },
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
