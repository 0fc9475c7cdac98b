/**
 * The boards this tool builds for, one declared entry each (the shape: board.ts). A board is
 * added here, not in the steps: they ask the entry (recognize.ts) and never test which board it is.
 */
import type { Board, PowerSettings } from './board.js';

/**
 * The C2's profiles. Only values HardKernel's boot.ini lists are used (a test checks them against
 * the stock file). That max_freq list starts at its default, 1536, and the higher entries are
 * overclocks, so every profile keeps 1536 and the cores are what the USB profiles cut. The core
 * counts are judgement, not measurement: docs/power.md has the figures they rest on.
 */
const c2Profile = (maxcpus: string, ethernet: boolean): PowerSettings => ({
  settings: [
    { kind: 'set', name: 'maxcpus', value: maxcpus },
    { kind: 'set', name: 'max_freq', value: '1536' },
  ],
  ethernet,
});

/**
 * A Pi's profiles: `maxcpus=` on the kernel command line (the kernel starts that many cores, the
 * others stay off) and `arm_freq` in config.txt, the firmware's top ARM clock in MHz. 1000 is the
 * Zero 2 W's default and below the Pi 4's (1500, 1800 with arm_boost) and the Pi 5's (2400):
 * raspberrypi/documentation, config_txt/overclocking.adoc, the table of default values. `full`
 * takes both back to the firmware's defaults. docs/boards.md has what each is for.
 */
const piProfile = (maxcpus: string | undefined): PowerSettings => ({
  settings: maxcpus === undefined ? [{ kind: 'unset', name: 'arm_freq' }] : [{ kind: 'set', name: 'arm_freq', value: '1000' }],
  kernelArgs: maxcpus === undefined ? { remove: ['maxcpus'], set: [] } : { remove: [], set: [`maxcpus=${maxcpus}`] },
  ethernet: true,
});

const NO_FIRST_BOOT = { kernelArgs: [], units: [], does: 'nothing: the stock image has no first-boot setup' };

export const BOARDS: readonly Board[] = [
  {
    id: 'odroid-c2',
    name: 'ODROID-C2',
    image: "HardKernel's Ubuntu 18.04 minimal (kernel 3.16)",
    recognize: { bootConfig: 'c2-boot.ini', deviceTrees: /^meson64_odroidc2\.dtb$/i, osRelease: ['ubuntu'] },
    port: 'micro-USB OTG',
    video: {
      // reference odroid-c2/boot.ini lines 183-186: `fdt rm /meson-fb; ...` when nographics is "1".
      edits: [{ kind: 'set', name: 'nographics', value: '1' }],
      does: 'setenv nographics "1": boot.ini removes the video nodes from the device tree, freeing the memory reserved for them',
    },
    gadget: {
      mechanism: 'g_ether (module options in modprobe.d, loaded by modules-load.d)',
      settings: [],
      kernelArgs: () => [],
      conflictingPackages: [],
    },
    power: {
      profiles: { 'usb2-0.5A': c2Profile('2', false), 'usb3-0.9A': c2Profile('3', false), full: c2Profile('4', true) },
      note: 'USB profiles: fewer cores, Ethernet off (docs/power.md)',
    },
    firstBoot: NO_FIRST_BOOT,
    kernel: { overlay: 'overlayfs', storageDriver: 'vfs, or btrfs on a btrfs data image (the 3.16 kernel has no mainline overlay)' },
    provenAtBoot: 'npm run test:boot: a Debian arm64 image booted as the C2 boots it (usb0, read-only root, TLS API)',
  },
  {
    id: 'odroid-c4',
    name: 'ODROID-C4, HC4, N2+',
    image: "HardKernel's Ubuntu 20.04/22.04 minimal (kernel 4.9)",
    recognize: { bootConfig: 'config.ini', deviceTrees: /^meson64_odroid(c4|hc4|n2|n2_plus)\.dtb$/i, osRelease: ['ubuntu'] },
    port: 'USB OTG (micro-USB on the C4)',
    video: {
      // reference odroid-c4/boot.ini line 34 reads it from config.ini's [generic] (lines 24-25).
      edits: [{ kind: 'set', name: 'display_autodetect', value: 'false' }],
      does: 'display_autodetect=false in config.ini: U-Boot stops probing the monitor; the HDMI drivers still load (no nographics switch in its boot.ini)',
    },
    // Their kernel has USB_ETH=m; the configfs ECM/NCM functions are not built.
    gadget: {
      mechanism: 'legacy g_ether (module options in modprobe.d, loaded by modules-load.d)',
      settings: [],
      kernelArgs: () => [],
      conflictingPackages: [],
    },
    power: {
      profiles: { full: { settings: [], ethernet: true } },
      note: 'no USB power profile: these boards need their DC supply, not a USB port',
    },
    firstBoot: NO_FIRST_BOOT,
    kernel: { overlay: 'overlay', storageDriver: 'overlay2 on the ext4 data image' },
    provenAtBoot:
      "npm run test:boot: a Debian arm64 image with HardKernel's C4 boot.ini and config.ini booted with its patched boot.ini's bootargs (usb0, read-only root, TLS API); not U-Boot, the device tree or the OTG controller",
  },
  {
    id: 'raspberrypi',
    name: 'Raspberry Pi 4, Pi 5, Zero 2 W',
    image: 'Raspberry Pi OS Lite arm64, bookworm and trixie (kernel 6.x)',
    recognize: { bootConfig: 'config.txt', deviceTrees: /^bcm27(10|11|12)-rpi-.*\.dtb$/i, osRelease: ['debian', 'raspbian'] },
    port: 'USB-C power port (Pi 4, Pi 5); the micro-USB port marked USB (Zero 2 W)',
    video: {
      edits: [
        {
          kind: 'comment-out',
          line: 'dtoverlay=vc4-kms-v3d',
          why: 'odroid-buildx-image (nographics): no KMS display or V3D driver on a headless builder',
        },
        { kind: 'set', name: 'gpu_mem', value: '16' },
      ],
      does: 'no vc4-kms-v3d overlay (the KMS display and V3D 3D drivers do not load) and gpu_mem=16 in config.txt (the least GPU memory; a Pi 4 or Zero 2 W then starts the cut-down firmware, a Pi 5 has no split and ignores it): docs/boards.md',
    },
    gadget: {
      mechanism:
        'dtoverlay=dwc2,dr_mode=peripheral in config.txt; g_ether from modules-load=dwc2,g_ether on cmdline.txt, its options in modprobe.d',
      settings: [{ kind: 'add-line', line: 'dtoverlay=dwc2,dr_mode=peripheral' }],
      kernelArgs: (module) => [`modules-load=dwc2,${module}`],
      conflictingPackages: ['rpi-usb-gadget'],
    },
    power: {
      profiles: { 'usb2-0.5A': piProfile('1'), 'usb3-0.9A': piProfile('2'), full: piProfile(undefined) },
      note: 'USB profiles: fewer cores (maxcpus=) and arm_freq=1000; usb2-0.5A is for the Zero 2 W (docs/boards.md)',
    },
    firstBoot: {
      kernelArgs: ['resize'],
      units: ['userconfig.service', 'regenerate_ssh_host_keys.service', 'rpi-resize.service'],
      does: 'no first-boot resize (the root is read-only, the data is on the share), SSH host keys from the build, no user wizard and no cloud-init (logins: the configured SSH keys)',
    },
    kernel: { overlay: 'overlay', storageDriver: 'overlay2 on the ext4 data image' },
    provenAtBoot:
      "npm run test:boot: a Debian arm64 image in pi-gen's layout booted with its patched cmdline.txt (usb0 by NetworkManager, read-only root, TLS API, the host's time); not the firmware or dwc2",
  },
];
