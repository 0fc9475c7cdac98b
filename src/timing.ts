/**
 * Times named build stages; summary() gives the one-line report printed after every build. A
 * stage run once per board of a fleet is reported once, as its total and how many runs.
 */
export function stageTimer() {
  const times = new Map<string, { ms: number; runs: number }>();
  const stage = async <T>(name: string, fn: () => Promise<T>): Promise<T> => {
    const start = performance.now();
    try {
      return await fn();
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
