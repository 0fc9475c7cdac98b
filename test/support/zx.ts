/**
 * zx's `$` for the project's own scripts (the bench, test helpers that run tools), set up once:
 * scripts import it from here. Never from src/: `$` with options runs the command inside an
 * AsyncLocalStorage, which slows every later `await` (docs/library-notes.md), so these scripts
 * call it without options too (the bench times the build in its own process).
 */
import { type SpawnOptions, spawn } from 'node:child_process';
import { $ } from 'zx/core';

// A command's stderr stays in its result (and the error when it fails) instead of on ours.
$.quiet = true;

// zx runs each command with `bash -c`, and bash started by Node reads ~/.bashrc when SHLVL is unset
// (docs/library-notes.md): --norc, so neither the time nor PATH depends on the machine's shell setup.
$.spawn = ((command: string, args: readonly string[], options: SpawnOptions) => {
  if (typeof options.shell !== 'string' || args.length > 0) throw new Error(`zx: expected one command for a shell, got ${command}`);
  return spawn(options.shell, ['--norc', '-c', command], { ...options, shell: false });
}) as typeof spawn;

export type { ProcessPromise } from 'zx/core';
export { $ };
