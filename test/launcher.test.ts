import { execFile } from 'node:child_process';
import { chmod, mkdtemp, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { promisify } from 'node:util';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { REPO, runScript } from './support/cli.js';

const run = promisify(execFile);
const LAUNCHER = join(REPO, 'launch.mjs');
/** Where launch.mjs keeps the bundle of `entry`. */
const bundleOf = (entry: string) => join(REPO, '.cache', 'launch', `${relative(REPO, entry).replaceAll('/', '+')}.mjs`);

describe('launch.mjs', () => {
  let dir: string;
  let entry: string;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'launch-'));
    entry = join(dir, 'entry.ts');
    // An entry that shows what a bundle could get wrong: a typed import, its own URL, its arguments.
    await writeFile(
      entry,
      "import { fileURLToPath } from 'node:url';\nimport { greeting } from './greeting.js';\n\n" +
        'const here: string = fileURLToPath(import.meta.url);\n' +
        'process.stdout.write(`${greeting} ${here} ${JSON.stringify(process.argv.slice(2))}\\n`);\n',
    );
    await writeFile(join(dir, 'greeting.ts'), "export const greeting: string = 'hello';\n");
    // ES modules, as in the checkout.
    await writeFile(join(dir, 'package.json'), '{ "type": "module" }\n');
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
    await rm(bundleOf(entry), { force: true });
  });

  it('runs an entry from its bundle, and bundles it again when a source it imports changes', async () => {
    const first = await run(process.execPath, [LAUNCHER, entry, '--flag', 'a b'], { cwd: REPO });
    expect(first.stdout).toBe(`hello ${entry} ["--flag","a b"]\n`);
    const bundled = await stat(bundleOf(entry));

    const again = await run(process.execPath, [LAUNCHER, entry], { cwd: REPO });
    expect(again.stdout).toBe(`hello ${entry} []\n`);
    expect((await stat(bundleOf(entry))).mtimeMs).toBe(bundled.mtimeMs);

    await writeFile(join(dir, 'greeting.ts'), "export const greeting: string = 'howdy';\n");
    const changed = await run(process.execPath, [LAUNCHER, entry], { cwd: REPO });
    expect(changed.stdout).toBe(`howdy ${entry} []\n`);
  });

  it('runs the entry through tsx where its cache cannot be written', async () => {
    await chmod(dir, 0o755);
    // nobody cannot write the checkout's .cache, nor make it.
    const asNobody = ['setpriv', '--reuid=65534', '--regid=65534', '--clear-groups', process.execPath, LAUNCHER, entry, 'x'];
    const result = await run(asNobody[0], asNobody.slice(1), { cwd: dir, env: { ...process.env, HOME: dir } });
    expect(result.stdout).toBe(`hello ${entry} ["x"]\n`);
    await expect(stat(bundleOf(entry))).rejects.toMatchObject({ code: 'ENOENT' });
  });

  it("runs this package's npm scripts in the directory the user typed them in (INIT_CWD), and nothing else", async () => {
    await writeFile(entry, 'process.stdout.write(process.cwd());\n');
    const user = await mkdtemp(join(tmpdir(), 'launch-user-'));
    try {
      // As `npm run build-image` starts it: in the checkout, npm's variables naming the script.
      const asScript = { ...process.env, INIT_CWD: user, npm_lifecycle_script: 'node launch.mjs build' };
      expect((await run(process.execPath, [LAUNCHER, entry], { cwd: REPO, env: asScript })).stdout).toBe(user);
      // Started by another script (vitest under `npm test`): INIT_CWD is npm's, not this command's.
      const underTests = { ...process.env, INIT_CWD: user, npm_lifecycle_script: 'vitest run' };
      expect((await run(process.execPath, [LAUNCHER, entry], { cwd: dir, env: underTests })).stdout).toBe(dir);
    } finally {
      await rm(user, { recursive: true, force: true });
    }
  });

  it('runs build.ts as tsx does', async () => {
    const launched = await run(process.execPath, [LAUNCHER, 'build.ts', '--list-steps'], { cwd: REPO });
    const viaTsx = await runScript('build.ts', ['--list-steps']);
    expect(viaTsx.code).toBe(0);
    expect(launched.stdout).toBe(viaTsx.stdout);
  });
});
