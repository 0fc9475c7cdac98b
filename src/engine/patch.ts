import type { BuildConfig } from '../config/schema.js';
import { withRootfs } from '../image/ext4.js';
import { withBootPartition } from '../image/fat.js';
import type { ImageLayout } from '../image/layout.js';
import { info } from '../log.js';
import { killPoint } from '../timing.js';
import { type ApplyStats, applyOperations, type Partitions } from './apply.js';
import type { OpenStream, Operation } from './operations.js';
import { PlannedView } from './planned-view.js';
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

/** A whole build's plan for one image: made before anything is written, applied as it is. */
export interface Plan {
  /** Each step's operations, as data: printed with describeOperation, comparable as JSON. */
  planned: { step: string; operations: Operation[] }[];
  /** What the steps warned of (StepContext.warn), each once. */
  warnings: string[];
  /** What the operations add to the root file system at most (engine/space.ts). */
  rootfsNeeds: SpaceNeeded;
}

export interface PatchResult extends Plan, ApplyStats {}

export interface PlanOptions {
  paths: BuildPaths;
  once?: RunMemo;
}

export interface ApplyOptions {
  /** The device's secrets by name, for its `secret` operations (made by the build's secrets stage). */
  secrets?: ReadonlyMap<string, Buffer>;
  /** Opens what `stream` operations read (artifacts/stream-sources.ts). */
  openStream?: OpenStream;
  /** Reads the patched image while it is still open (opening it again costs a mount of each file system). */
  afterSteps?: (image: ImageView) => Promise<void>;
}

/**
 * Plans every step against `image`, each seeing the image as the steps before it would leave it
 * (PlannedView), without writing anything.
 */
async function planSteps(image: ImageView, config: BuildConfig, steps: Step[], options: PlanOptions): Promise<Plan> {
  const once = options.once ?? runMemo();
  const plan: Plan = { planned: [], warnings: [], rootfsNeeds: { bytes: 0, inodes: 0 } };
  const warn = (message: string) => {
    if (!plan.warnings.includes(message)) plan.warnings.push(message);
  };
  const view = new PlannedView(image);
  const names = steps.map((s) => s.name);
  for (const step of steps) {
    const operations: Operation[] = await step.plan({ config, image: view, paths: options.paths, steps: names, once, warn });
    for (const op of operations) await view.record(op);
    plan.planned.push({ step: step.name, operations });
    const needs = spaceNeeded(operations, 'rootfs');
    plan.rootfsNeeds = { bytes: plan.rootfsNeeds.bytes + needs.bytes, inodes: plan.rootfsNeeds.inodes + needs.inodes };
  }
  return plan;
}

/** Performs a plan's operations, step by step, on the open partitions. */
async function applySteps(layout: ImageLayout, parts: Partitions, plan: Plan, options: ApplyOptions): Promise<PatchResult> {
  const stats: ApplyStats = { operations: 0, bytesWritten: 0 };
  for (const { step, operations } of plan.planned) {
    info(`step ${step}: ${operations.length} operation(s)`);
    await applyOperations(parts, operations, { stats, secrets: options.secrets, openStream: options.openStream });
    killPoint(`step ${step}`);
  }
  await options.afterSteps?.(viewOf(layout, parts));
  return { ...plan, ...stats };
}

/** The whole build's plan for `layout`'s image, which is opened read-only: --dry-run, and the space check before the copy. */
export function planImage(layout: ImageLayout, config: BuildConfig, steps: Step[], options: PlanOptions): Promise<Plan> {
  return withPartitions(layout, false, (parts) => planSteps(viewOf(layout, parts), config, steps, options));
}

/** Applies a plan made by planImage to an image with the same contents (a copy of the one planned). */
export function applyPlan(layout: ImageLayout, plan: Plan, options: ApplyOptions): Promise<PatchResult> {
  return withPartitions(layout, true, (parts) => applySteps(layout, parts, plan, options));
}

/** Plans the steps against the image and applies the plan, with the image opened once. */
export function patchImage(
  layout: ImageLayout,
  config: BuildConfig,
  steps: Step[],
  options: PlanOptions & ApplyOptions,
): Promise<PatchResult> {
  return withPartitions(layout, true, async (parts) =>
    applySteps(layout, parts, await planSteps(viewOf(layout, parts), config, steps, options), options),
  );
}
