/** Device tree blobs for tests, compiled by dtc (device-tree-compiler), the reference implementation. */
import { readFileSync } from 'node:fs';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { tempDir } from './support/images.js';
import { $ } from './support/zx.js';

export async function compileDeviceTree(source: string): Promise<Buffer> {
  const dir = await tempDir();
  const dts = join(dir, 'tree.dts');
  const dtb = join(dir, 'tree.dtb');
  await writeFile(dts, source);
  // -q: HardKernel's node names (`ethernet@0xc9410000`) draw style warnings, not errors.
  await $`dtc -q -I dts -O dtb -o ${dtb} ${dts}`;
  return readFile(dtb);
}

/** Every node path as fdtget lists them, walking down from the root. */
export async function fdtgetPaths(blob: Buffer): Promise<string[]> {
  const file = join(await tempDir(), 'tree.dtb');
  await writeFile(file, blob);
  const walk = async (path: string): Promise<string[]> => {
    const { stdout } = await $`fdtget -l ${file} ${path}`;
    const children = stdout
      .split('\n')
      .filter(Boolean)
      .map((name) => (path === '/' ? `/${name}` : `${path}/${name}`));
    return [path, ...(await Promise.all(children.map(walk))).flat()];
  };
  return walk('/');
}

/** What U-Boot's `fdt rm PATH` does, through libfdt as U-Boot uses it: fdtput -r on a copy. */
export async function fdtRemove(blob: Buffer, path: string): Promise<Buffer> {
  const file = join(await tempDir(), 'tree.dtb');
  await writeFile(file, blob);
  await $`fdtput -r ${file} ${path}`;
  return readFile(file);
}

/**
 * The top of HardKernel's 3.16 C2 tree (meson64_odroidc2.dts): the root's children that its
 * boot.ini removes for nographics, the Ethernet MAC, and the two USB controllers. Properties are
 * trimmed to what makes each node recognisable.
 */
export const C2_TREE = readFileSync(new URL('fixtures/dts/c2-hardkernel.dts', import.meta.url), 'utf8');

/**
 * The mainline shape of the C2's tree (meson-gxbb-odroidc2.dts): the Ethernet MAC under /soc with
 * the `ethernet0` alias, properties trimmed as above.
 */
export const C2_MAINLINE_TREE = readFileSync(new URL('fixtures/dts/c2-mainline.dts', import.meta.url), 'utf8');
