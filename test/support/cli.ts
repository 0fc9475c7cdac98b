import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';

export const REPO = fileURLToPath(new URL('../..', import.meta.url));
/** What `npm run build-image` (and inspect, flash) start: the entry bundled once per source change, run by node. */
export const LAUNCH = [process.execPath, fileURLToPath(new URL('../../launch.mjs', import.meta.url))];

export interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs a command in `cwd` with `env` added to this process's; resolves with its exit status and output. */
export function runCommand(argv: string[], options: { cwd: string; env?: NodeJS.ProcessEnv }): Promise<RunResult> {
  const [command, ...args] = argv;
  return new Promise((resolve) => {
    execFile(command, args, { cwd: options.cwd, env: { ...process.env, ...options.env }, maxBuffer: 16 << 20 }, (error, stdout, stderr) => {
      resolve({ code: error ? ((error as { code?: number }).code ?? 1) : 0, stdout, stderr });
    });
  });
}

/**
 * Runs one of the package's entry points the way `npm run <script> -- args` does; `prefix` is a
 * command that runs it (e.g. unshare ...).
 */
export function runScript(script: string, args: string[], env: NodeJS.ProcessEnv = {}, prefix: string[] = []): Promise<RunResult> {
  return runCommand([...prefix, ...LAUNCH, script, ...args], { cwd: REPO, env });
}

export const buildImage = (args: string[], env?: NodeJS.ProcessEnv, prefix?: string[]) => runScript('build.ts', args, env, prefix);
