/** Progress and status go to stderr so stdout carries only the build summary. */

export function info(message: string): void {
  process.stderr.write(`${message}\n`);
}

export function warn(message: string): void {
  process.stderr.write(`warning: ${message}\n`);
}

const MiB = 1024 * 1024;

/**
 * A progress bar for a byte count, with the rate so far when `rate` is set. On a terminal it
 * redraws one line; elsewhere (CI logs) it prints at most one line per 10 %, so logs stay readable.
 */
export function progressBar(label: string, total: number | undefined, options: { rate?: boolean } = {}) {
  const tty = process.stderr.isTTY === true;
  const started = performance.now();
  let done = 0;
  let lastDecile = -1;
  const render = (final: boolean) => {
    const pct = total ? Math.min(100, Math.floor((done / total) * 100)) : undefined;
    const seconds = (performance.now() - started) / 1000;
    const rate = options.rate && seconds > 0 ? ` ${(done / MiB / seconds).toFixed(1)} MiB/s` : '';
    const text =
      (pct === undefined
        ? `${label}: ${(done / MiB).toFixed(1)} MiB`
        : `${label}: [${'#'.repeat(Math.floor(pct / 5)).padEnd(20, '.')}] ${pct}% ${(done / MiB).toFixed(1)}/${(total! / MiB).toFixed(1)} MiB`) +
      rate;
    if (tty) {
      process.stderr.write(`\r${text}${final ? '\n' : ''}`);
    } else {
      const decile = pct === undefined ? -1 : Math.floor(pct / 10);
      if (final || decile > lastDecile) {
        lastDecile = decile;
        process.stderr.write(`${text}\n`);
      }
    }
  };
  return {
    advance(bytes: number) {
      done += bytes;
      render(false);
    },
    finish() {
      render(true);
    },
  };
}
