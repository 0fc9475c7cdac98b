/** A build as the boards' tests run it: with a stand-in Docker bundle, failing at once on a crash. */
import { expect } from 'vitest';
import { configWithFakeBundle } from '../docker-bundle-fixture.js';
import { buildImage, type RunResult } from './cli.js';
import { tempDir } from './images.js';

/**
 * build-image of `input` into `out` as image `name`, with `config` and a stand-in bundle (the
 * boards' tests build this way); a crash's "internal error" fails the caller's test at once.
 */
export async function buildWithStandInBundle(
  input: string,
  out: string,
  name: string,
  config: Record<string, unknown> = {},
  flags: string[] = [],
): Promise<RunResult> {
  const run = await buildImage([
    '--input',
    input,
    '--out',
    out,
    '--name',
    name,
    '--config',
    await configWithFakeBundle(await tempDir(), config),
    ...flags,
  ]);
  expect(run.stderr).not.toMatch(/internal error/);
  return run;
}
