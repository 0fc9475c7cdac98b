/**
 * Room in the root file system, checked before the copy: the first board's plan, made against the
 * source image without writing anything, says what the build adds (the Docker bundle's unpacked
 * size from its tar headers, overlays, templates), and the superblock says what is free.
 */
import type { BuildConfig } from '../config/schema.js';
import { patchImage } from '../engine/patch.js';
import type { BuildPaths, RunMemo } from '../engine/step.js';
import type { ImageLayout } from '../image/layout.js';
import { rootfsFree, rootfsTooSmall } from '../image/rootfs-limits.js';
import { STEPS } from '../steps/index.js';

export async function checkRootfsSpace(
  layout: ImageLayout,
  board: BuildConfig,
  options: { paths: BuildPaths; once: RunMemo },
): Promise<void> {
  const plan = await patchImage(layout, board, STEPS, { paths: options.paths, dryRun: true, once: options.once });
  const refusal = rootfsTooSmall(layout, await rootfsFree(layout), plan.rootfsNeeds);
  if (refusal) throw refusal;
}
