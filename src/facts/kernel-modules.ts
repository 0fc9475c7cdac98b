/** The kernels installed in the image and the modules each provides. */
import { posix } from 'node:path';
import type { ImageView } from '../engine/step.js';
import { realDir } from './root-paths.js';

export interface KernelModules {
  /** The directory name under /lib/modules, e.g. 3.16.85-65. */
  version: string;
  /** Loadable (modules.dep) and built in (modules.builtin), as modprobe names them. */
  modules: Set<string>;
}

/** modprobe's name for a module file: no directory, no .ko(.xz), and `-` the same as `_`. */
const moduleName = (path: string) =>
  posix
    .basename(path)
    .replace(/\.ko(\.[a-z0-9]+)?$/, '')
    .replaceAll('-', '_');

/**
 * The modules each installed kernel provides, from depmod's lists rather than a walk of the
 * tree (thousands of files on a real image). A kernel without modules.dep lists nothing.
 */
export async function kernelModules(image: ImageView): Promise<KernelModules[]> {
  // Kernel packages install into /lib/modules (a link into /usr on merged-/usr images); some into /usr/lib.
  const roots = new Set([await realDir(image, '/lib/modules'), '/usr/lib/modules']);
  let root = '';
  let versions: string[] = [];
  for (root of roots) {
    versions = (await image.readdir('rootfs', root)).sort();
    if (versions.length > 0) break;
  }
  const kernels: KernelModules[] = [];
  for (const version of versions) {
    const modules = new Set<string>();
    for (const list of ['modules.dep', 'modules.builtin']) {
      const text = (await image.readText('rootfs', `${root}/${version}/${list}`)) ?? '';
      for (const line of text.split('\n')) {
        const path = line.split(':', 1)[0].trim();
        if (path) modules.add(moduleName(path));
      }
    }
    kernels.push({ version, modules });
  }
  return kernels;
}
