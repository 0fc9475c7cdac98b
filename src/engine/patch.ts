import type { BuildConfig } from '../config/schema.js';
import { withRootfs } from '../image/ext4.js';
import { withBootPartition } from '../image/fat.js';
import type { ImageLayout } from '../image/layout.js';
import { info } from '../log.js';
import { killPoint } from '../timing.js';
import { type ApplyStats, applyOperations, type Partitions } from './apply.js';
import type { OpenStream, Operation } from './operations.js';
import { type SpaceNeeded, spaceNeeded } from './space.js';
import type { BuildPaths, ImageView, RunMemo, Step } from './step.js';

/** The read-only face of the open partitions that steps (and inspect) see. */
export function viewOf(layout: ImageLayout, parts: Partitions): ImageView {
  const lstat: ImageView['lstat'] = (on, path) => parts[on].lstat(path);
  const read: ImageView['read'] = async (on, path) => ((await lstat(on, path))?.type === 'file' ? parts[on].readFile(path) : undefined);
  return {
    layout,
    lstat,
    read,
    readText: async (on, path) => (await read(on, path))?.toString('utf8'),
    readdir: async (on, path) => ((await lstat(on, path))?.type === 'dir' ? parts[on].readdir(path) : []),
    readlink: async (on, path) => ((await lstat(on, path))?.type === 'symlink' ? parts[on].readlink(path) : undefined),
  };
}

/** Opens both partitions of an image for the duration of `fn`. */
export function withPartitions<T>(layout: ImageLayout, writable: boolean, fn: (parts: Partitions) => Promise<T>): Promise<T> {
  return withBootPartition(layout, (boot) => withRootfs(layout, (rootfs) => fn({ boot, rootfs }), { writable }), { writable });
}

/** A memo for one build run: pass the same one to every patchImage of the run. */
export function runMemo(): RunMemo {
  const results = new Map<string, Promise<unknown>>();
  return <T>(key: string, work: () => Promise<T>) => {
    if (!results.has(key)) results.set(key, work());
    return results.get(key) as Promise<T>;
  };
}

export interface PatchResult extends ApplyStats {
  /** Each step's operations, as data: printed with describeOperation, comparable as JSON. */
  planned: { step: string; operations: Operation[] }[];
  /** What the steps warned of (StepContext.warn), each once. */
  warnings: string[];
  /** What the operations add to the root file system at most (engine/space.ts). */
  rootfsNeeds: SpaceNeeded;
}

/**
 * Runs each step against the image as the previous steps left it: plan, then apply.
 * With `dryRun` the image is opened read-only and the operations are only listed.
 */
export async function patchImage(
  layout: ImageLayout,
  config: BuildConfig,
  steps: Step[],
  options: {
    paths: BuildPaths;
    dryRun?: boolean;
    once?: RunMemo;
    /** The device's secrets by name, for its `secret` operations (made by the build's secrets stage). */
    secrets?: ReadonlyMap<string, Buffer>;
    /** Opens what `stream` operations read (artifacts/stream-sources.ts). */
    openStream?: OpenStream;
    /** Reads the patched image while it is still open (opening it again costs a mount of each file system). */
    afterSteps?: (image: ImageView) => Promise<void>;
  },
): Promise<PatchResult> {
  const dryRun = options.dryRun ?? false;
  const once = options.once ?? runMemo();
  return withPartitions(layout, !dryRun, async (parts) => {
    const image = viewOf(layout, parts);
    const result: PatchResult = { operations: 0, bytesWritten: 0, planned: [], warnings: [], rootfsNeeds: { bytes: 0, inodes: 0 } };
    const warn = (message: string) => {
      if (!result.warnings.includes(message)) result.warnings.push(message);
    };
    for (const step of steps) {
      const operations: Operation[] = await step.plan({ config, image, paths: options.paths, steps: steps.map((s) => s.name), once, warn });
      result.planned.push({ step: step.name, operations });
      const needs = spaceNeeded(operations, 'rootfs');
      result.rootfsNeeds = { bytes: result.rootfsNeeds.bytes + needs.bytes, inodes: result.rootfsNeeds.inodes + needs.inodes };
      if (dryRun) continue;
      info(`step ${step.name}: ${operations.length} operation(s)`);
      await applyOperations(parts, operations, { stats: result, secrets: options.secrets, openStream: options.openStream });
      killPoint(`step ${step.name}`);
    }
    await options.afterSteps?.(image);
    return result;
  });
}
