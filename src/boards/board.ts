/** What the build needs to know about one board: the shape of every entry of the board table. */
import type { BuildConfig, PowerProfile } from '../config/schema.js';
import type { BootConfigKind, KernelArgsEdit, SettingEdit } from '../facts/boot-config.js';

/** The config's `board` values: one per entry of the table. */
export type BoardId = NonNullable<BuildConfig['board']>;

/** How a profile keeps the board within its supply, in its boot configuration's own terms. */
export interface PowerSettings {
  /** Settings-file edits (a C2's `setenv maxcpus`, a Pi's `arm_freq` in config.txt). */
  settings: readonly SettingEdit[];
  /** Kernel command-line changes (a Pi's `maxcpus=`). */
  kernelArgs?: KernelArgsEdit;
  /** false: the Ethernet MAC leaves the device tree (the C2's boot.ini switch). */
  ethernet: boolean;
}

export interface Board {
  /** The config's `board` value and `--board`. */
  id: BoardId;
  /** The name a person knows it by, as the summary and `inspect` print it. */
  name: string;
  /** The stock image this entry is for. */
  image: string;
  /** What in an image says it is this board's. */
  recognize: {
    /** The boot files its firmware or boot loader reads. */
    bootConfig: BootConfigKind;
    /** Device tree blobs on the FAT that are this board's (any one): narrows a boot format several boards share. */
    deviceTrees: RegExp;
    /** os-release IDs its stock images carry. */
    osRelease: readonly string[];
  };
  /** The port the one cable goes into: power and data. */
  port: string;
  /** What the video-off edits do, for the step summary, the docs and the table. */
  video: { edits: readonly SettingEdit[]; does: string };
  /** How the USB Ethernet gadget comes up. */
  gadget: {
    /** For the docs and the table. */
    mechanism: string;
    /** Settings-file edits that put the USB controller into device mode. */
    settings: readonly SettingEdit[];
    /** Kernel arguments that load the gadget, for the module the config's usb.protocol picks. */
    kernelArgs: (module: string) => string[];
    /** Debian packages of the stock image that set up a gadget of their own: their units are masked. */
    conflictingPackages: readonly string[];
  };
  /** The supply it can run from. */
  power: {
    /** What each supported profile sets; a profile missing here is refused. */
    profiles: Partial<Record<PowerProfile, PowerSettings>>;
    /** Said when a profile is refused, and in the table. */
    note: string;
  };
  /**
   * What the stock image does at its first boot that a read-only root must not (it would run at
   * every boot, and write): the kernel arguments that start it (besides its `init=`, which the
   * overlay's replaces) and the units, masked where the image has them. `does` says what of it the
   * build does offline instead.
   */
  firstBoot: { kernelArgs: readonly string[]; units: readonly string[]; does: string };
  /** What its stock kernel offers the builder. */
  kernel: { overlay: 'overlay' | 'overlayfs'; storageDriver: string };
  /** What a boot of a built image has shown, and where (the boot test, or not yet). */
  provenAtBoot: string;
}
