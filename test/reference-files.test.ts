/**
 * The reference files as a new user gets them: a clone with nothing beside it, the pinned sources
 * played by a server on 127.0.0.1 (REFERENCE_BASE_URL) that serves the files this run reads.
 */
import { execFile as execFileCallback } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { readdir, rm, symlink } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startServer, type TestServer } from './http-server.js';
import { REPO } from './support/cli.js';
import { tempDir } from './support/images.js';
import { REFERENCE_FILES, referencePath } from './support/reference.js';

const execFile = promisify(execFileCallback);

interface Run {
  code: number;
  output: string;
}

let dir: string;
let clone: string;
let server: TestServer;
const served = (path: string) => server.files.get(`/${REFERENCE_FILES.find((file) => file.path === path)!.source}`)!;

/** A command in the clone as a user would run it there: no REFERENCE_DIR, not inside this vitest. */
function runInClone(command: string, args: string[], baseUrl = server.url('')): Promise<Run> {
  const inherited = Object.entries(process.env).filter(
    ([name]) => !['REFERENCE_DIR', 'FORCE_COLOR'].includes(name) && !name.startsWith('VITEST'),
  );
  const env = { ...Object.fromEntries(inherited), REFERENCE_BASE_URL: baseUrl, NO_COLOR: '1' };
  return new Promise((resolve) => {
    execFileCallback(command, args, { cwd: clone, env }, (error, stdout, stderr) => {
      resolve({ code: error ? ((error as { code?: number }).code ?? 1) : 0, output: stdout + stderr });
    });
  });
}

const vitestInClone = (baseUrl?: string) => runInClone('node_modules/.bin/vitest', ['run', 'test/bootconfig.test.ts'], baseUrl);
// The command the error line names, and the same script without npm's start-up where only its answer counts.
const fetchInClone = () => runInClone('npm', ['run', '--silent', 'fetch-reference']);
const fetchInCloneQuick = () => runInClone('node_modules/.bin/tsx', ['test/support/fetch-reference.ts']);
const errorLines = (output: string) => output.split('\n').filter((line) => line.startsWith('error:'));
const cached = async () => {
  const files = await readdir(join(clone, '.cache/reference'), { recursive: true }).catch(() => [] as string[]);
  return files.filter((file) => !REFERENCE_FILES.some((pinned) => pinned.path.startsWith(`${file}/`))).sort();
};

beforeAll(async () => {
  dir = await tempDir();
  clone = join(dir, 'clone');
  // What is committed, cloned where no ../shared is beside it; node_modules shared to skip `npm ci`.
  await execFile('git', ['clone', '--quiet', REPO, clone]);
  await symlink(join(REPO, 'node_modules'), join(clone, 'node_modules'));
  server = await startServer(
    Object.fromEntries(REFERENCE_FILES.map((file) => [`/${file.source}`, { body: readFileSync(referencePath(file.path)) }])),
  );
});

afterAll(async () => {
  await server?.close();
  await rm(dir, { recursive: true, force: true });
});

describe('reference files in a fresh clone', () => {
  it('without network or files, the tests stop at one error line naming the files, the command and the variable', async () => {
    const down = await startServer();
    const unreachable = down.url('');
    await down.close();
    const run = await vitestInClone(unreachable);
    expect(run.code).not.toBe(0);
    const lines = errorLines(run.output);
    expect(lines).toHaveLength(1);
    for (const file of REFERENCE_FILES) expect(lines[0]).toContain(file.path);
    expect(lines[0]).toContain('npm run fetch-reference');
    expect(lines[0]).toContain('REFERENCE_DIR');
    expect(run.output).not.toContain('ENOENT');
    expect(run.output).not.toMatch(/^\s+at /m);
  });

  it('refuses a file whose sha256 is not the pinned one, and does not keep it', async () => {
    const bootIni = served('odroid-c2/boot.ini');
    const genuine = bootIni.body;
    bootIni.body = Buffer.from(genuine.toString('utf8').replace('setenv nographics "0"', 'setenv nographics "1"'));
    try {
      const run = await fetchInClone();
      expect(run.code).toBe(1);
      expect(errorLines(run.output)).toEqual([
        expect.stringMatching(/odroid-c2\/boot\.ini \(.* sent sha256 [0-9a-f]{64}, not the pinned 3287d215/),
      ]);
      expect(await cached()).toEqual(
        REFERENCE_FILES.map((file) => file.path)
          .filter((path) => path !== 'odroid-c2/boot.ini')
          .sort(),
      );
    } finally {
      bootIni.body = genuine;
    }
  });

  it('fetches the pinned files once into .cache/reference/, and a test that reads them passes', async () => {
    await rm(join(clone, '.cache/reference'), { recursive: true, force: true });
    const run = await vitestInClone();
    expect(run.output).toMatch(/Tests +\d+ passed/);
    expect(run.code).toBe(0);
    expect(await cached()).toEqual(REFERENCE_FILES.map((file) => file.path).sort());
    const requests = server.requests.length;
    const again = await fetchInCloneQuick();
    expect(again).toEqual({ code: 0, output: `${join(clone, '.cache/reference')}\n` });
    expect(server.requests.length).toBe(requests);
  });
});
