/** Times named build stages; summary() gives the one-line report printed after every build. */
export function stageTimer() {
  const times: [string, number][] = [];
  const stage = async <T>(name: string, fn: () => Promise<T>): Promise<T> => {
    const start = performance.now();
    try {
      return await fn();
    } finally {
      times.push([name, performance.now() - start]);
    }
  };
  stage.summary = () => {
    const total = times.reduce((sum, [, ms]) => sum + ms, 0);
    return `time: ${times.map(([name, ms]) => `${name} ${(ms / 1000).toFixed(1)}s`).join(', ')}; total ${(total / 1000).toFixed(1)}s`;
  };
  return stage;
}
