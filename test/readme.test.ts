import { execFileSync } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { REPO } from './cli.js';
import { tempDir } from './fixtures.js';

/** The shell block under a README heading, one command per line. */
async function readmeCommands(heading: string): Promise<string[]> {
  const readme = await readFile(join(REPO, 'README.md'), 'utf8');
  const section = readme.slice(readme.indexOf(heading));
  const block = /```sh\n([\s\S]*?)```/.exec(section)?.[1] ?? '';
  return block.split('\n').filter((line) => line.trim() !== '');
}

describe('README', () => {
  it('the offline example runs as written', async () => {
    // The README's /tmp/ is a fresh directory here, so that runs side by side keep apart.
    const tmp = await tempDir();
    const commands = (await readmeCommands('### Offline example')).map((command) => command.replaceAll('/tmp/', `${tmp}/`));
    expect(commands.some((c) => c.startsWith('npm run build-image'))).toBe(true);
    for (const command of commands) {
      execFileSync('bash', ['-euo', 'pipefail', '-c', command], { cwd: REPO, stdio: 'pipe', env: { ...process.env, SOURCE_DATE_EPOCH: '' } });
    }
    const out = join(tmp, 'out');
    const inspect = execFileSync('npm', ['run', '--silent', 'inspect', '--', '--input', join(out, 'demo.img')], { cwd: REPO, encoding: 'utf8' });
    expect(inspect).toMatch(/^ {2}docker +applied$/m);
    execFileSync('sha256sum', ['-c', 'SHA256SUMS'], { cwd: out });
  }, 300_000);

  it('names the test commands that CI runs, in its order', async () => {
    const ci = await readFile(join(REPO, '.ci/run'), 'utf8');
    const readme = await readFile(join(REPO, 'README.md'), 'utf8');
    const tests = readme.slice(readme.indexOf('## Tests')).split(/\n## /)[0];
    const commands = [...tests.matchAll(/```sh\n([\s\S]*?)```/g)].flatMap((block) =>
      block[1].split('\n').map((line) => line.replace(/#.*/, '').trim()).filter(Boolean),
    );
    expect(commands).toEqual(['npm test', 'npm run test:boot']);
    const ciCommands = ci.split('\n').filter((line) => commands.includes(line.trim()));
    expect(ciCommands).toEqual(commands);
  });
});
