/**
 * "Will it come up?": the chain a boot follows from the boot loader to dockerd's API, each link with the
 * file that sets it, read from the image without running it. `npm run inspect` prints it.
 */
import type { ImageView } from '../engine/step.js';
import { kernelArgs, kernelArgsSource, readBootConfig } from './boot-config.js';
import { kernelModules } from './kernel-modules.js';
import { detectNetwork, USB0_FILES, type Usb0Mechanism } from './network.js';
import { realPath } from './root-paths.js';

export interface ChainLink {
  /** What this link decides: `kernel command line`, `init`, ... */
  link: string;
  /** What the image sets; undefined when nothing does (the chain breaks there). */
  value?: string;
  /** The file that sets it, as `boot:/path` or `rootfs:/path`. */
  file: string;
}

// overlay-init picks the first of these the kernel has (templates/readonly-root/sbin/overlay-init).
const OVERLAY_TYPES = ['overlay', 'overlayfs', 'aufs'];

/** The first `options MODULE ...` line for the module in /etc/modprobe.d/*.conf, with its file. */
async function moduleOptions(image: ImageView, modules: string[]): Promise<{ value?: string; file: string }> {
  for (const name of (await image.readdir('rootfs', '/etc/modprobe.d')).filter((n) => n.endsWith('.conf')).sort()) {
    const path = `/etc/modprobe.d/${name}`;
    const line = ((await image.readText('rootfs', path)) ?? '')
      .split('\n')
      .find((l) => modules.includes(l.trim().split(/\s+/)[1] ?? '') && /^\s*options\s/.test(l));
    if (line) return { value: line.trim().split(/\s+/).slice(1).join(' '), file: `rootfs:${path}` };
  }
  return { file: 'rootfs:/etc/modprobe.d' };
}

/** Where each mechanism's usb0 file says the address is. */
const ADDRESS_PATTERNS: Record<Usb0Mechanism, RegExp> = {
  ifupdown: /^\s*address\s+(\S+)/m,
  netplan: /^\s*addresses:\s*\[\s*([^\],\s]+)/m,
  networkmanager: /^\s*address1\s*=\s*([^,\s]+)/m,
  networkd: /^\s*Address\s*=\s*(\S+)/m,
  'usb0-unit': /^ADDRESS='?([^'\s]*)'?$/m,
};

async function dockerdListens(image: ImageView): Promise<string | undefined> {
  const text = await image.readText('rootfs', '/etc/docker/daemon.json');
  if (text === undefined) return undefined;
  try {
    const hosts = (JSON.parse(text) as { hosts?: unknown }).hosts;
    return Array.isArray(hosts)
      ? hosts.filter((host) => typeof host === 'string' && host.startsWith('tcp://')).join(' ') || undefined
      : undefined;
  } catch {
    return undefined;
  }
}

/** The chain: kernel command line, init, overlay type, gadget options, usb0's mechanism, its address, dockerd's API. */
export async function bootChain(image: ImageView): Promise<ChainLink[]> {
  const boot = await readBootConfig(image);
  const source = kernelArgsSource(boot);
  const bootargs = boot && kernelArgs(boot).join(' ');
  const initArg = bootargs
    ?.split(' ')
    .find((arg) => arg.startsWith('init='))
    ?.slice('init='.length);
  const init = await realPath(image, initArg ?? '/sbin/init');
  const initText = await image.readText('rootfs', init);
  const kernels = await kernelModules(image);
  const overlayType = initText?.includes('choose_overlay')
    ? OVERLAY_TYPES.find((type) => kernels.some((kernel) => kernel.modules.has(type)))
    : undefined;
  const gadget = await moduleOptions(image, ['g_ether', 'g_ncm']);
  const network = await detectNetwork(image);
  const usb0File = USB0_FILES[network.mechanism].path;
  const address = ADDRESS_PATTERNS[network.mechanism].exec((await image.readText('rootfs', usb0File)) ?? '')?.[1];
  return [
    { link: 'kernel command line', value: bootargs || undefined, file: source },
    { link: 'init', value: initArg ?? '/sbin/init (the kernel default)', file: initArg ? source : `rootfs:${init}` },
    { link: 'overlay', value: overlayType && `${overlayType} over the read-only root`, file: `rootfs:${init}` },
    { link: 'USB gadget', ...gadget },
    {
      link: 'usb0 brought up by',
      value: network.fallback ? `${network.mechanism} (fallback: ${network.fallback})` : network.mechanism,
      file: `rootfs:${network.evidence}`,
    },
    { link: 'usb0 address', value: address, file: `rootfs:${usb0File}` },
    { link: 'dockerd API', value: await dockerdListens(image), file: 'rootfs:/etc/docker/daemon.json' },
  ];
}
