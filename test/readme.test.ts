import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, readdirSync, statSync } from 'node:fs';
import { readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { BUILD_FLAGS } from '../src/cli/build-flags.js';
import { synopsis } from '../src/cli/options.js';
import { listSteps, STEPS } from '../src/steps/index.js';
import { copyCheckout } from './support/checkout.js';
import { REPO } from './support/cli.js';
import { skipWithout, tempDir } from './support/images.js';
import { REFERENCE_FILES } from './support/reference.js';
import { sha256 } from './support/sha256.js';

/** The first code block (of the given language, '' for a plain one) after `marker` in the README. */
async function readmeBlock(marker: string, language = 'sh'): Promise<string> {
  const readme = await readFile(join(REPO, 'README.md'), 'utf8');
  const section = readme.slice(readme.indexOf(marker));
  return new RegExp(`\`\`\`${language}\\n([\\s\\S]*?)\`\`\``).exec(section)?.[1] ?? '';
}

/** The shell block under a README heading, one command per line. */
async function readmeCommands(heading: string): Promise<string[]> {
  return (await readmeBlock(heading)).split('\n').filter((line) => line.trim() !== '');
}

const noNetworkNamespace = skipWithout({
  'a network namespace without network (unshare -rn)': spawnSync('unshare', ['-rn', 'true']).status === 0,
});

describe('README', () => {
  it.skipIf(noNetworkNamespace)('the offline example runs as written, offline, in a fresh clone with nothing beside it', async () => {
    // The README's /tmp/ is a fresh directory here, so that runs side by side keep apart.
    const tmp = await tempDir();
    // A clone of this tree: no .cache/, no ../shared/reference beside it, no REFERENCE_DIR.
    const clone = await copyCheckout(join(tmp, 'clone'), { linkModules: true });
    const { REFERENCE_DIR: _, ...env } = process.env;
    const commands = (await readmeCommands('### Offline example')).map((command) => command.replaceAll('/tmp/', `${tmp}/`));
    expect(commands.some((c) => c.startsWith('npm run build-image'))).toBe(true);
    for (const command of commands) {
      // unshare -rn: a network namespace of its own, without any network.
      execFileSync('unshare', ['-rn', 'bash', '--norc', '-euo', 'pipefail', '-c', command], {
        cwd: clone,
        stdio: 'pipe',
        // A 256 MiB disk instead of the script's 1 GiB: the same content, a quarter of the bytes for
        // --release to hash and compress.
        env: { ...env, SOURCE_DATE_EPOCH: '', DISK_SIZE_MIB: '256' },
      });
    }
    const out = join(tmp, 'out');
    const inspect = execFileSync('npm', ['run', '--silent', 'inspect', '--', '--input', join(out, 'demo.img')], {
      cwd: clone,
      encoding: 'utf8',
    });
    expect(inspect).toMatch(/^ {2}docker +applied$/m);
    execFileSync('sha256sum', ['-c', 'SHA256SUMS'], { cwd: out });
    await rm(tmp, { recursive: true, force: true });
  });

  it("holds HardKernel's C2 boot files for the offline example, as pinned", async () => {
    for (const file of REFERENCE_FILES.filter((entry) => entry.path.startsWith('odroid-c2/boot.ini'))) {
      expect(sha256(await readFile(join(REPO, 'test/fixtures/reference', file.path))), file.path).toBe(file.sha256);
    }
  });

  it('names the test commands that CI runs, in its order', async () => {
    const ci = await readFile(join(REPO, '.ci/run'), 'utf8');
    const readme = await readFile(join(REPO, 'README.md'), 'utf8');
    const tests = readme.slice(readme.indexOf('## Tests')).split(/\n## /)[0];
    const commands = [...tests.matchAll(/```sh\n([\s\S]*?)```/g)].flatMap((block) =>
      block[1]
        .split('\n')
        .map((line) => line.replace(/#.*/, '').trim())
        .filter(Boolean),
    );
    expect(commands).toEqual(['npm test', 'npm run test:boot']);
    const ciCommands = ci.split('\n').filter((line) => commands.includes(line.trim()));
    expect(ciCommands).toEqual(commands);
  });

  it('shows the build flags as the flag table declares them', async () => {
    const readme = await readFile(join(REPO, 'README.md'), 'utf8');
    expect(await readmeBlock('## Command line', '')).toBe(`npm run build-image -- ${synopsis(BUILD_FLAGS)}\n`);
    const rows = [...readme.matchAll(/^\| `--([a-z-]+)` \|/gm)].map((row) => row[1]);
    expect(rows).toEqual(BUILD_FLAGS.map((flag) => flag.name));
  });

  it('lists the steps as --list-steps prints them', async () => {
    expect(await readmeBlock('The steps, in the order', '')).toBe(listSteps(STEPS));
  });

  it('has a file map that matches the tree', async () => {
    const map = (await readmeBlock('The code is in layers', '')).split('\n').filter(Boolean);
    const paths = map.map((line) => line.split(/\s+/, 1)[0]);
    for (const path of paths.filter((p) => !p.includes('*'))) expect(existsSync(join(REPO, path)), path).toBe(true);
    const layers = readdirSync(join(REPO, 'src')).filter((name) => name !== 'types' && statSync(join(REPO, 'src', name)).isDirectory());
    expect(paths.filter((p) => /^src\/[^*]/.test(p)).sort()).toEqual(layers.map((layer) => `src/${layer}/`).sort());
  });
});
