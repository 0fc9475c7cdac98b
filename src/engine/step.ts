import type { BuildConfig } from '../config/schema.js';
import type { ImageLayout } from '../image/layout.js';
import type { EntryStat } from '../image/partition-fs.js';
import type { Operation, Partition } from './operations.js';

/** What a step may see of the image: reads only. */
export interface ImageView {
  layout: ImageLayout;
  read(on: Partition, path: string): Promise<Buffer | undefined>;
  readText(on: Partition, path: string): Promise<string | undefined>;
  lstat(on: Partition, path: string): Promise<EntryStat | undefined>;
  /** Names in a directory; empty when it does not exist. */
  readdir(on: Partition, path: string): Promise<string[]>;
  /** Where a symlink points; undefined when the path is not a symlink. */
  readlink(on: Partition, path: string): Promise<string | undefined>;
}

/** Host-side places a step may use; nothing here is inside the image. */
export interface BuildPaths {
  /** Persistent build secrets (keys, certificates), created once and reused: `<out>/secrets`. */
  secrets: string;
  /** Download cache (the repo's image/ dir). */
  cache: string;
}

/**
 * Runs `work` once per build run for `key` and gives every caller its result: for plan-time work
 * that is the same for every image a run patches (a fleet's devices), e.g. checking the Docker bundle.
 */
export type RunMemo = <T>(key: string, work: () => Promise<T>) => Promise<T>;

export interface StepContext {
  config: BuildConfig;
  image: ImageView;
  paths: BuildPaths;
  /** Names of every step in this build, in order (the build stamp records them). */
  steps: string[];
  once: RunMemo;
  /**
   * Something about the image the user should know (no iptables, a power profile that may be too
   * much): kept in the plan's result and said once in the summary, not while planning, since the
   * space check and --dry-run plan too.
   */
  warn(message: string): void;
}

/** One device feature: reads the config and the image, returns the operations it needs. */
export interface Step {
  name: string;
  summary: string;
  /** Its plan names device secrets (`secret` operations): whoever applies it makes them first. */
  usesSecrets?: true;
  plan(context: StepContext): Promise<Operation[]>;
  /** Whether the image already shows this feature (for `npm run inspect`). */
  applied(image: ImageView): Promise<boolean>;
}
