/** Device tree blobs for tests, compiled by dtc (device-tree-compiler), the reference implementation. */
import { execFile as execFileCallback } from 'node:child_process';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { tempDir } from './fixtures.js';

const execFile = promisify(execFileCallback);

export async function compileDeviceTree(source: string): Promise<Buffer> {
  const dir = await tempDir();
  const dts = join(dir, 'tree.dts');
  const dtb = join(dir, 'tree.dtb');
  await writeFile(dts, source);
  // -q: HardKernel's node names (`ethernet@0xc9410000`) draw style warnings, not errors.
  await execFile('dtc', ['-q', '-I', 'dts', '-O', 'dtb', '-o', dtb, dts]);
  return readFile(dtb);
}

/** Every node path as fdtget lists them, walking down from the root. */
export async function fdtgetPaths(blob: Buffer): Promise<string[]> {
  const file = join(await tempDir(), 'tree.dtb');
  await writeFile(file, blob);
  const walk = async (path: string): Promise<string[]> => {
    const { stdout } = await execFile('fdtget', ['-l', file, path]);
    const children = stdout.split('\n').filter(Boolean).map((name) => (path === '/' ? `/${name}` : `${path}/${name}`));
    return [path, ...(await Promise.all(children.map(walk))).flat()];
  };
  return walk('/');
}

/** What U-Boot's `fdt rm PATH` does, through libfdt as U-Boot uses it: fdtput -r on a copy. */
export async function fdtRemove(blob: Buffer, path: string): Promise<Buffer> {
  const file = join(await tempDir(), 'tree.dtb');
  await writeFile(file, blob);
  await execFile('fdtput', ['-r', file, path]);
  return readFile(file);
}

/**
 * The top of HardKernel's 3.16 C2 tree (meson64_odroidc2.dts): the root's children that its
 * boot.ini removes for nographics, the Ethernet MAC, and the two USB controllers. Properties are
 * trimmed to what makes each node recognisable.
 */
export const C2_TREE = `/dts-v1/;
/ {
  compatible = "amlogic, Gxbb";
  model = "ODROID-C2";
  #address-cells = <2>;
  #size-cells = <2>;
  cpus {
    #address-cells = <2>;
    #size-cells = <0>;
    cpu@0 { device_type = "cpu"; reg = <0x0 0x0>; };
    cpu@1 { device_type = "cpu"; reg = <0x0 0x1>; };
    cpu@2 { device_type = "cpu"; reg = <0x0 0x2>; };
    cpu@3 { device_type = "cpu"; reg = <0x0 0x3>; };
  };
  memory@00000000 { device_type = "memory"; };
  reserved-memory { #address-cells = <2>; #size-cells = <2>; ranges; };
  meson-vout { compatible = "amlogic, meson-vout"; };
  meson-fb { compatible = "amlogic, meson-fb"; };
  codec_mm { compatible = "amlogic, codec, mm"; };
  ethmac: ethernet@0xc9410000 {
    compatible = "amlogic, gxbb-rgmii-dwmac";
    reg = <0x0 0xc9410000 0x0 0x10000 0x0 0xc8834540 0x0 0x8>;
    phy-mode = "rgmii";
  };
  mesonstream { compatible = "amlogic, codec, streambuf"; };
  picdec { compatible = "amlogic, picdec"; };
  ppmgr { compatible = "amlogic, ppmgr"; };
  deinterlace { compatible = "amlogic, deinterlace"; };
  amhdmitx { compatible = "amlogic, amhdmitx"; };
  aocec { compatible = "amlogic, amlogic-aocec"; };
  dwc2_b { compatible = "amlogic,dwc2"; host-only-core = <1>; };
  dwc2_a { compatible = "amlogic,dwc2"; gpio-vbus-power = "GPIOAO_5"; };
};
`;

/**
 * The mainline shape of the C2's tree (meson-gxbb-odroidc2.dts): the Ethernet MAC under /soc with
 * the `ethernet0` alias, properties trimmed as above.
 */
export const C2_MAINLINE_TREE = `/dts-v1/;
/ {
  compatible = "hardkernel,odroid-c2", "amlogic,meson-gxbb";
  model = "Hardkernel ODROID-C2";
  #address-cells = <2>;
  #size-cells = <2>;
  aliases {
    serial0 = "/soc/bus@c8100000/serial@4c0";
    ethernet0 = "/soc/ethernet@c9410000";
  };
  memory@0 { device_type = "memory"; reg = <0x0 0x0 0x0 0x80000000>; };
  soc {
    compatible = "simple-bus";
    #address-cells = <2>;
    #size-cells = <2>;
    ranges;
    ethernet@c9410000 {
      compatible = "amlogic,meson-gxbb-dwmac", "snps,dwmac-3.70a", "snps,dwmac";
      reg = <0x0 0xc9410000 0x0 0x10000 0x0 0xc8834540 0x0 0x4>;
      phy-mode = "rgmii";
    };
    usb@c9000000 { compatible = "amlogic,meson-gxbb-usb", "snps,dwc2"; };
  };
};
`;
