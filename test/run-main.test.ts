/** Entry points' exit status: a program that stops waiting on nothing must not exit 0 as if it had finished. */
import { execFile } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { REPO } from './support/cli.js';
import { tempDir } from './support/images.js';

const TSX = join(REPO, 'node_modules/.bin/tsx');

/** Runs a main whose body is `body` under runMain; its exit code and stderr. */
async function runEntry(body: string): Promise<{ code: number; stderr: string }> {
  const script = join(await tempDir(), 'entry.mts');
  await writeFile(
    script,
    `import { runMain } from ${JSON.stringify(join(REPO, 'src/cli/options.ts'))};\n` + `runMain(async () => { ${body} }, () => 'out');\n`,
  );
  return new Promise((resolve) => {
    execFile(TSX, [script], (error, _stdout, stderr) => resolve({ code: error ? Number(error.code) : 0, stderr }));
  });
}

describe('runMain', () => {
  it('exits 0 when main finishes', async () => {
    expect(await runEntry('await new Promise((done) => setTimeout(done, 10));')).toEqual({ code: 0, stderr: '' });
  });

  it('exits 1 with one line when main is left waiting on a promise nothing will settle', async () => {
    const run = await runEntry('await new Promise(() => {});');
    expect(run.code).toBe(1);
    expect(run.stderr).toBe('internal error (please report): the program stopped before it finished, waiting on nothing\n');
  });
});
