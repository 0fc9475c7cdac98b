import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { REPO } from './support/cli.js';
import { tempDir } from './support/images.js';
import { $ } from './support/zx.js';

function sources(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) return sources(path);
    return /\.(ts|mjs)$/.test(entry.name) ? [path] : [];
  });
}

const importsZx = (path: string) => /from 'zx(\/[a-z]+)?'/.test(readFileSync(path, 'utf8'));

describe('zx', () => {
  it('enters only through test/support/zx.ts, and never the build', () => {
    const files = [...sources(join(REPO, 'src')), ...sources(join(REPO, 'test')), ...sources(join(REPO, 'bench')), join(REPO, 'build.ts')];
    const direct = files.filter(importsZx).map((path) => relative(REPO, path));
    expect(direct).toEqual(['test/support/zx.ts']);
    const users = files.filter((path) => readFileSync(path, 'utf8').includes("/support/zx.js'")).map((path) => relative(REPO, path));
    expect(users.filter((path) => path.startsWith('src/') || path === 'build.ts')).toEqual([]);
    expect(users).toContain('bench/bench.ts');
  });

  describe('$', () => {
    const saved = { HOME: process.env.HOME, SHLVL: process.env.SHLVL };
    afterEach(() => {
      for (const [name, value] of Object.entries(saved)) {
        if (value === undefined) delete process.env[name];
        else process.env[name] = value;
      }
    });

    it('starts bash without ~/.bashrc even where SHLVL is unset (docs/library-notes.md)', async () => {
      const home = await tempDir();
      writeFileSync(join(home, '.bashrc'), 'echo sourced >"$HOME/bashrc-ran"\n');
      process.env.HOME = home;
      delete process.env.SHLVL;
      expect((await $`echo ${'one arg'}`).stdout).toBe('one arg\n');
      expect(existsSync(join(home, 'bashrc-ran'))).toBe(false);
    });

    it('fails on a failing command, with its stderr in the error, not on ours', async () => {
      await expect($`ls /nonexistent-${'dir'}`).rejects.toThrow(/No such file/);
    });
  });
});
