import { describe, expect, it } from 'vitest';
import { UserError } from '../src/errors.js';
import { deviceTree, deviceTreeNodes, findNode } from '../src/formats/fdt.js';
import { C2_MAINLINE_TREE, C2_TREE, compileDeviceTree, fdtgetPaths } from './device-tree.js';

const TREE = `/dts-v1/;
/ {
  model = "ODROID-C2";
  #address-cells = <2>;
  #size-cells = <2>;
  memory@00000000 { device_type = "memory"; };
  ethmac: ethernet@0xc9410000 {
    compatible = "amlogic, gxbb-rgmii-dwmac";
    reg = <0x0 0xc9410000 0x0 0x10000 0x0 0xc8834540 0x0 0x8>;
    phy-mode = "rgmii";
  };
  cpus {
    #address-cells = <2>;
    #size-cells = <0>;
    cpu@0 { reg = <0x0 0x0>; };
    cpu@1 { reg = <0x0 0x1>; };
  };
  empty {};
  meson-fb { status = "okay"; mem_size = <0x06000000 0x00100000>; };
};
`;

describe('deviceTreeNodes', () => {
  it('lists the same node paths as fdtget, in order', async () => {
    const blob = await compileDeviceTree(TREE);
    const nodes = deviceTreeNodes(blob);
    expect(nodes).toEqual(await fdtgetPaths(blob));
    expect(nodes).toContain('/ethernet@0xc9410000');
    expect(nodes).toContain('/cpus/cpu@1');
    expect(deviceTreeNodes(await compileDeviceTree(C2_TREE))).toEqual(await fdtgetPaths(await compileDeviceTree(C2_TREE)));
  });

  it('refuses what is not a device tree, naming the file', () => {
    const attempt = () => deviceTreeNodes(Buffer.alloc(4096, 0x5a), 'meson64_odroidc2.dtb');
    expect(attempt).toThrow(UserError);
    expect(attempt).toThrow(/^meson64_odroidc2\.dtb is not a valid device tree blob \(no FDT header\)$/);
  });

  it('refuses a truncated blob', async () => {
    const blob = await compileDeviceTree(TREE);
    expect(() => deviceTreeNodes(blob.subarray(0, blob.length - 16))).toThrow(/truncated/);
  });
});

describe('findNode', () => {
  const MACS = ['amlogic, gxbb-rgmii-dwmac', 'amlogic,meson-gxbb-dwmac'];

  it("finds the Ethernet MAC by compatible in HardKernel's and mainline's trees", async () => {
    expect(findNode(deviceTree(await compileDeviceTree(C2_TREE)), MACS, 'ethernet0')).toBe('/ethernet@0xc9410000');
    expect(findNode(deviceTree(await compileDeviceTree(C2_MAINLINE_TREE)), MACS, 'ethernet0')).toBe('/soc/ethernet@c9410000');
  });

  it('follows the alias when no compatible matches, and only to a node that is there', async () => {
    const aliased = deviceTree(await compileDeviceTree(C2_MAINLINE_TREE.replace('"amlogic,meson-gxbb-dwmac", ', '')));
    expect(findNode(aliased, MACS, 'ethernet0')).toBe('/soc/ethernet@c9410000');
    const dangling = deviceTree(await compileDeviceTree(C2_MAINLINE_TREE.replace(/ethernet@c9410000 \{[^}]*\};/, '')));
    expect(findNode(dangling, MACS, 'ethernet0')).toBeUndefined();
  });

  it('reads properties as fdtget does', async () => {
    const mac = deviceTree(await compileDeviceTree(C2_MAINLINE_TREE)).find((node) => node.path === '/soc/ethernet@c9410000')!;
    expect(mac.properties.get('phy-mode')?.toString('latin1')).toBe('rgmii\0');
  });
});
