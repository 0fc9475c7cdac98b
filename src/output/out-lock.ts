/**
 * One build at a time into an --out: an exclusive flock(2) on `<out>/.build.lock`. The lock belongs
 * to this process's open descriptor, so the kernel releases it however the process ends, SIGKILL
 * included: a lock file left by a killed build locks nothing. Node has no flock(); util-linux's
 * `flock` takes it on a descriptor we pass it, and the lock stays with our descriptor after it exits.
 */
import { spawnSync } from 'node:child_process';
import { closeSync, constants, fstatSync, ftruncateSync, openSync, readFileSync, statSync, unlinkSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { UserError } from '../errors.js';
import { endJournal, type KilledBuild, startJournal } from './build-journal.js';
import { LOCK_FILE } from './out-layout.js';
import { lastOnInterrupt } from './temp-files.js';

const CONFLICT = 75;

export interface OutLock {
  /** What a build killed in this --out left, from its journal: for removeLeftovers. */
  killed: KilledBuild;
  /** Ends the journal, unlocks and removes the lock file. */
  release(): void;
}

/** The inode at `path` now, or undefined when there is none. */
function inodeAt(path: string): number | undefined {
  try {
    return statSync(path).ino;
  } catch {
    return undefined;
  }
}

/** Takes the lock on `outDir` (which must exist), or refuses in one line naming the build that holds it. */
export function lockOutDir(outDir: string): OutLock {
  const path = join(outDir, LOCK_FILE);
  for (;;) {
    const fd = openSync(path, constants.O_RDWR | constants.O_CREAT, 0o644);
    const run = spawnSync('flock', ['--exclusive', '--nonblock', '--conflict-exit-code', String(CONFLICT), '3'], {
      stdio: ['ignore', 'ignore', 'pipe', fd],
    });
    if (run.error || (run.status !== 0 && run.status !== CONFLICT)) {
      closeSync(fd);
      const said = run.error?.message ?? run.stderr.toString().trim();
      throw new UserError(`cannot lock ${path} with flock (${said}); install util-linux, which provides flock`);
    }
    if (run.status === CONFLICT) {
      const pid = readFileSync(fd, 'utf8').trim();
      closeSync(fd);
      const holder = /^\d+$/.test(pid) ? `another build (pid ${pid})` : 'another build';
      throw new UserError(`${holder} is writing into ${outDir}; wait for it to finish, or pass another --out`);
    }
    // The file may have been removed by the build that released it after we opened it: a lock on
    // a removed file locks nothing, so take it again on the file that is there now.
    if (inodeAt(path) !== fstatSync(fd).ino) {
      closeSync(fd);
      continue;
    }
    ftruncateSync(fd, 0);
    writeSync(fd, `${process.pid}\n`, 0);
    const killed = startJournal(outDir);
    const release = () => {
      forget();
      endJournal();
      unlinkSync(path);
      closeSync(fd);
    };
    const forget = lastOnInterrupt(release);
    return { killed, release };
  }
}
