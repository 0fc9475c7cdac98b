/**
 * Times named build stages; summary() gives the one-line report printed after every build. A
 * stage run once per device of a fleet is reported once, as its total and how many runs.
 */
export function stageTimer() {
  const times = new Map<string, { ms: number; runs: number }>();
  const stage = async <T>(name: string, fn: () => Promise<T>): Promise<T> => {
    const start = performance.now();
    try {
      const result = await fn();
      killPoint(`after ${name}`);
      return result;
    } finally {
      const time = times.get(name) ?? { ms: 0, runs: 0 };
      times.set(name, { ms: time.ms + performance.now() - start, runs: time.runs + 1 });
    }
  };
  stage.summary = () => {
    const total = [...times.values()].reduce((sum, { ms }) => sum + ms, 0);
    const parts = [...times].map(([name, { ms, runs }]) => `${name} ${(ms / 1000).toFixed(1)}s${runs > 1 ? ` (${runs} runs)` : ''}`);
    return `time: ${parts.join(', ')}; total ${(total / 1000).toFixed(1)}s`;
  };
  return stage;
}

export type Stage = ReturnType<typeof stageTimer>;

/**
 * A named point of a build ("after copy", "xz", "replace secrets", ...) where the test of
 * interrupted builds stops it: with ODROID_BUILD_KILL_AT=<point> the build sends itself
 * ODROID_BUILD_KILL_WITH (default SIGKILL) there, so the test kills at a known stage, not at a time.
 */
export function killPoint(point: string): void {
  if (process.env.ODROID_BUILD_KILL_AT !== point) return;
  process.kill(process.pid, (process.env.ODROID_BUILD_KILL_WITH ?? 'SIGKILL') as NodeJS.Signals);
}
