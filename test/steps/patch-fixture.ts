import { join } from 'node:path';
import { openStream } from '../../src/artifacts/stream-sources.js';
import { resolveConfig } from '../../src/config/load.js';
import type { BuildConfig } from '../../src/config/schema.js';
import { type PatchResult, patchImage } from '../../src/engine/patch.js';
import type { Step } from '../../src/engine/step.js';
import type { ImageLayout } from '../../src/image/layout.js';
import { openImage } from '../../src/image/open.js';
import { deviceSecrets } from '../../src/secrets/device-secrets.js';
import { copyOfStockImage, type FixtureOptions, type FixtureVariant, tempDir } from '../support/images.js';

export interface PatchedFixture {
  img: string;
  layout: ImageLayout;
  config: BuildConfig;
  result: PatchResult;
  /** The temp dir holding the image; secrets live in <dir>/secrets. */
  dir: string;
}

/**
 * Runs the given steps, through the real planner and applier, on a fresh copy of a
 * stock-like fixture image. Pass `img` to patch an already patched image again.
 */
export async function patchFixture(
  steps: Step[],
  rawConfig: object = {},
  options: { variant?: FixtureVariant; fixture?: FixtureOptions; img?: string; dir?: string } = {},
): Promise<PatchedFixture> {
  const dir = options.dir ?? (await tempDir());
  const img = options.img ?? (await copyOfStockImage(options.variant ?? 'stock', dir, options.fixture));
  const layout = await openImage(img);
  const config = resolveConfig(rawConfig);
  const secretsDir = join(dir, 'secrets');
  // As a build does: the device's secrets made in their own stage, then the patch places them.
  const secrets = steps.some((step) => step.usesSecrets) ? await deviceSecrets(secretsDir, config) : undefined;
  const result = await patchImage(layout, config, steps, {
    paths: { secrets: secretsDir, cache: join(dir, 'cache') },
    secrets,
    openStream,
  });
  return { img, layout, config, result, dir };
}
