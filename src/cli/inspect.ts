/**
 * What an image is, read without changing it: its partitions, boot settings, kernel and what it
 * ships, network stack, init system, and which of this tool's steps it already carries.
 */
import { open } from 'node:fs/promises';
import { recognizeBoard } from '../boards/recognize.js';
import { viewOf, withPartitions } from '../engine/patch.js';
import type { ImageView, Step } from '../engine/step.js';
import { UserError } from '../errors.js';
import { bootChain, type ChainLink } from '../facts/boot-chain.js';
import { type BootConfigKind, bootSetting, kernelArgs, readBootConfig } from '../facts/boot-config.js';
import { BUILD_STAMP_PATH } from '../facts/build-stamp.js';
import { kernelModules } from '../facts/kernel-modules.js';
import { detectNetwork, type NetworkFacts } from '../facts/network.js';
import { readExt4Superblock } from '../image/ext4-superblock.js';
import type { ImageLayout } from '../image/layout.js';

/** The modules this tool's features depend on (USB networking, the overlay root, docker's storage). */
export const WATCHED_MODULES = ['g_ether', 'g_ncm', 'overlay', 'overlayfs', 'aufs', 'nfs', 'fuse', 'loop'] as const;

export interface PartitionReport {
  number: number;
  role: 'boot' | 'rootfs' | 'other';
  /** MBR type byte, e.g. "0x0c". */
  type: string;
  offset: number;
  size: number;
  filesystem: 'FAT12' | 'FAT16' | 'FAT32' | 'ext4' | 'unknown';
  uuid?: string;
  label?: string;
}

export interface BootReport {
  /** Which file carries the settings; undefined when the FAT has neither. */
  kind?: BootConfigKind;
  file?: string;
  /** The active values, as the file sets them (unset ones absent). */
  variables: Record<string, string>;
  /** The kernel command line U-Boot would pass (boot.ini's bootargs, every ${var} expanded). */
  bootargs?: string;
  /** The init= argument, if any: the first program the kernel starts. */
  init?: string;
}

export interface ImageReport {
  image: string;
  /** The board the image is for (src/boards/table.ts), or why no board matches. */
  board: { id?: string; name: string };
  size: number;
  diskId: string;
  partitions: PartitionReport[];
  boot: BootReport;
  kernels: { version: string; modules: Record<(typeof WATCHED_MODULES)[number], boolean> }[];
  /** What brings usb0 up at boot and the file that shows it. */
  network: NetworkFacts;
  /** /sbin/init and what it is: systemd when it links to a systemd binary. */
  init: { path: string; target?: string; systemd: boolean; present: boolean };
  steps: { name: string; applied: boolean }[];
  /** "Will it come up?": from the kernel command line to dockerd's API, each with its file. */
  chain: ChainLink[];
  /** The build stamp this tool writes, parsed; a string when it is not JSON. */
  stamp?: unknown;
}

const hex = (byte: number) => `0x${byte.toString(16).padStart(2, '0')}`;

async function partitionsOf(layout: ImageLayout): Promise<PartitionReport[]> {
  const handle = await open(layout.path, 'r');
  try {
    const reports: PartitionReport[] = [];
    for (const p of layout.partitions) {
      const role = p.number === layout.boot.number ? 'boot' : p.number === layout.rootfs.number ? 'rootfs' : 'other';
      const base = { number: p.number, role, type: hex(p.mbrType), offset: p.offset, size: p.size } as const;
      const sb = role === 'boot' ? undefined : await readExt4Superblock(handle, p.offset);
      if (role === 'boot') reports.push({ ...base, filesystem: layout.boot.fat });
      else if (sb) reports.push({ ...base, filesystem: 'ext4', uuid: sb.uuid, label: sb.label });
      else reports.push({ ...base, filesystem: 'unknown' });
    }
    return reports;
  } finally {
    await handle.close();
  }
}

// The settings that matter for a headless builder: video on or off, CPU cores and clock.
const C2_VARIABLES = ['nographics', 'maxcpus', 'max_freq'];
const VARIABLES: Record<BootConfigKind, string[]> = {
  'c2-boot.ini': C2_VARIABLES,
  'config.ini': ['display_autodetect', 'monitor_onoff', 'maxcpus', 'max_freq_a55', 'max_freq_a73', 'max_freq_a53'],
  'config.txt': ['arm_freq', 'gpu_mem', 'max_framebuffers'],
};

async function bootOf(image: ImageView): Promise<BootReport> {
  const boot = await readBootConfig(image);
  if (!boot) return { variables: {} };
  const variables: Record<string, string> = {};
  for (const name of VARIABLES[boot.kind]) {
    const value = bootSetting(boot, name);
    if (value !== undefined) variables[name] = value;
  }
  const args = kernelArgs(boot);
  const init = args.find((arg) => arg.startsWith('init='))?.slice('init='.length);
  return { kind: boot.kind, file: boot.settings, variables, bootargs: args.join(' ') || undefined, init };
}

async function boardOf(image: ImageView): Promise<ImageReport['board']> {
  try {
    const board = await recognizeBoard(image);
    return { id: board.id, name: `${board.name} (${board.image})` };
  } catch (error) {
    if (error instanceof UserError) return { name: `none: ${error.message}` };
    throw error;
  }
}

async function initOf(image: ImageView): Promise<ImageReport['init']> {
  const path = '/sbin/init';
  const stat = await image.lstat('rootfs', path);
  const target = await image.readlink('rootfs', path);
  return { path, target, present: stat !== undefined, systemd: target !== undefined && /(^|\/)systemd$/.test(target) };
}

async function stampOf(image: ImageView): Promise<unknown> {
  const text = await image.readText('rootfs', BUILD_STAMP_PATH);
  if (text === undefined) return undefined;
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return text;
  }
}

/** Reads everything `npm run inspect` reports; the image is opened read-only. */
export function inspectImage(layout: ImageLayout, steps: Step[]): Promise<ImageReport> {
  return withPartitions(layout, false, async (parts) => {
    const image = viewOf(layout, parts);
    const kernels = (await kernelModules(image)).map(({ version, modules }) => ({
      version,
      modules: Object.fromEntries(WATCHED_MODULES.map((name) => [name, modules.has(name)])) as ImageReport['kernels'][number]['modules'],
    }));
    const applied = [];
    for (const step of steps) applied.push({ name: step.name, applied: await step.applied(image) });
    return {
      image: layout.path,
      board: await boardOf(image),
      size: layout.size,
      diskId: layout.diskId,
      partitions: await partitionsOf(layout),
      boot: await bootOf(image),
      kernels,
      network: await detectNetwork(image),
      init: await initOf(image),
      steps: applied,
      chain: await bootChain(image),
      stamp: await stampOf(image),
    };
  });
}

const mib = (bytes: number) => `${(bytes / 2 ** 20).toFixed(bytes % 2 ** 20 === 0 ? 0 : 1)} MiB`;

/** The report as aligned text for a person. */
export function formatReport(report: ImageReport): string {
  const lines: string[] = [];
  const row = (label: string, value = '') => lines.push(`${label.padEnd(12)} ${value}`.trimEnd());
  row('image', `${report.image} (${mib(report.size)}, disk id ${report.diskId})`);
  row('board', report.board.name);
  row('partitions');
  for (const p of report.partitions) {
    const fs = p.filesystem === 'ext4' ? `ext4 UUID=${p.uuid}${p.label ? ` LABEL=${p.label}` : ''}` : p.filesystem;
    lines.push(
      `  ${String(p.number).padEnd(2)} ${p.role.padEnd(7)} type ${p.type}  offset ${String(p.offset).padStart(10)}  size ${mib(p.size).padStart(10)}  ${fs}`,
    );
  }
  const { boot } = report;
  row('boot config', boot.file ? `${boot.file} (${boot.kind})` : 'none (no boot.ini, config.ini or config.txt on the FAT partition)');
  for (const [name, value] of Object.entries(boot.variables)) lines.push(`  ${name.padEnd(18)} ${value}`);
  if (boot.bootargs !== undefined) lines.push(`  ${'bootargs'.padEnd(18)} ${boot.bootargs}`);
  lines.push(`  ${'init='.padEnd(18)} ${boot.init ?? '(not set: the kernel starts /sbin/init)'}`);
  if (report.kernels.length === 0) row('kernel', 'none under /lib/modules');
  for (const kernel of report.kernels) {
    const shipped = Object.entries(kernel.modules).map(([name, has]) => `${name} ${has ? 'yes' : 'no'}`);
    row('kernel', `${kernel.version}: ${shipped.join(', ')}`);
  }
  const { network } = report;
  row('network', `${network.mechanism} (${network.evidence})${network.fallback ? `: fallback, ${network.fallback}` : ''}`);
  const { init } = report;
  const initKind = init.systemd ? 'systemd' : init.present ? 'not systemd' : 'missing';
  row('init', `${initKind} (${init.path}${init.target ? ` -> ${init.target}` : ''})`);
  row('steps');
  for (const step of report.steps) lines.push(`  ${step.name.padEnd(18)} ${step.applied ? 'applied' : 'not applied'}`);
  row('boot chain', '(what the boot will follow, and the file that sets each)');
  for (const { link, value, file } of report.chain)
    lines.push(`  ${link.padEnd(20)} ${value ?? 'NOT SET: the chain breaks here'}  [${file}]`);
  const stamp = report.stamp === undefined ? 'none (not built by odroid-buildx-image)' : JSON.stringify(report.stamp);
  row('build stamp', stamp);
  return `${lines.join('\n')}\n`;
}
