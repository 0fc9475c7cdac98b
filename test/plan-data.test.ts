/**
 * A plan is data: every step's operations for a whole build can be compared as JSON, so two plans
 * of the same image and config are equal, and the secrets a build makes change no plan (a plan
 * only names them).
 */
import { stat } from 'node:fs/promises';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { resolveConfig } from '../src/config/load.js';
import type { Operation } from '../src/engine/operations.js';
import { planImage } from '../src/engine/patch.js';
import { openImage } from '../src/image/open.js';
import { deviceSecrets } from '../src/secrets/device-secrets.js';
import { STEPS } from '../src/steps/index.js';
import { makeBundle } from './docker-bundle-fixture.js';
import { AUTHORIZED_KEY, copyOfStockImage, tempDir } from './support/images.js';

let dir: string;
let img: string;
let config: ReturnType<typeof resolveConfig>;
const secrets = () => join(dir, 'secrets');

/** The whole build's plan for the fixture, made without writing (as --dry-run and the space check make it). */
async function plan(): Promise<{ step: string; operations: Operation[] }[]> {
  const result = await planImage(await openImage(img), config, STEPS, { paths: { secrets: secrets(), cache: dir } });
  return result.planned;
}

/** Every value in an operation that is not plain data (a function, a class other than Buffer). */
function notData(value: unknown, path: string): string[] {
  if (typeof value === 'function') return [path];
  if (value === null || typeof value !== 'object' || Buffer.isBuffer(value)) return [];
  if (!Array.isArray(value) && Object.getPrototypeOf(value) !== Object.prototype) return [path];
  return Object.entries(value).flatMap(([key, inner]) => notData(inner, `${path}.${key}`));
}

beforeAll(async () => {
  dir = await tempDir();
  img = await copyOfStockImage('stock', dir);
  const bundle = join(dir, 'docker-28.0.0.tgz');
  const { sha256 } = await makeBundle(bundle);
  config = resolveConfig({ name: 'plan-data', docker: { bundle, sha256 }, ssh: { authorizedKeys: [AUTHORIZED_KEY] } });
});

describe('a build plan', () => {
  it('is plain data: no closure or generator in any operation', async () => {
    const planned = await plan();
    const kinds = new Set(planned.flatMap(({ operations }) => operations.map((op) => op.op)));
    // The plan exercises the kinds a build uses, edits, secrets and streams among them.
    for (const kind of ['write', 'edit', 'secret', 'stream', 'mkdir', 'symlink']) expect(kinds).toContain(kind);
    expect(planned.flatMap(({ step, operations }) => operations.flatMap((op, i) => notData(op, `${step}[${i}]`)))).toEqual([]);
  });

  it('is the same made twice, and the same once the secrets it names exist', async () => {
    const first = JSON.stringify(await plan());
    expect(JSON.stringify(await plan())).toBe(first);
    // Planning made no keys: the build's secrets stage makes them.
    await expect(stat(secrets())).rejects.toMatchObject({ code: 'ENOENT' });
    await deviceSecrets(secrets(), config);
    expect(JSON.stringify(await plan())).toBe(first);
  });
});
