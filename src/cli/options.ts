/** What the command-line entry points (build.ts, inspect) share: their flag tables, and how they fail. */
import { type ParseArgsConfig, parseArgs } from 'node:util';
import { isUserError, REFUSED_WRITES, refusedWrite, UserError } from '../errors.js';

/** A command line the program cannot run (an unknown flag, a missing word): exit status 2, as getopt's tools. */
export class UsageError extends UserError {}

/** The exit status of a usage error; every other failure exits 1. */
export const USAGE_EXIT = 2;

/**
 * One command-line flag, declared once: the parser, the usage text and the README's option table
 * (checked by test/readme.test.ts) all come from these entries.
 */
export interface Flag {
  name: string;
  type: 'string' | 'boolean';
  /** What the value stands for in the usage line, e.g. PATH|URL. */
  arg?: string;
  default?: string;
  /** One line for --help. */
  doc: string;
}

type FlagValue<F extends Flag> = F['type'] extends 'boolean' ? boolean : F extends { default: string } ? string : string | undefined;
export type FlagValues<F extends readonly Flag[]> = { [E in F[number] as E['name']]: FlagValue<E> } & { help: boolean };

/** A word of the command line that is not a flag, such as IMAGE, in the order it must come. */
export interface Positional {
  name: string;
  doc: string;
}

/** `[--name ARG]` for each flag, after the positional words: the synopsis after the command. */
export function synopsis(flags: readonly Flag[], positionals: readonly Positional[] = []): string {
  return [...positionals.map((word) => word.name), ...flags.map((flag) => `[--${flag.name}${flag.arg ? ` ${flag.arg}` : ''}]`)].join(' ');
}

/** The --help text: the synopsis, then each word and flag with its doc line. */
export function usage(command: string, flags: readonly Flag[], positionals: readonly Positional[] = []): string {
  const names = [...positionals.map((word) => word.name), ...flags.map((flag) => `--${flag.name}`)];
  const docs = [...positionals, ...flags].map((entry) => entry.doc);
  const width = Math.max(...names.map((name) => name.length)) + 2;
  const lines = names.map((name, i) => `  ${name.padEnd(width)}${docs[i]}`);
  return `usage: ${command} ${synopsis(flags, positionals)}\n${lines.join('\n')}`;
}

/**
 * The flags of argv, and its other words when `positionals` names them (all of them must be
 * there); a mistake is the user's, told in one line. `--help`/`-h` is always there.
 */
export function parseFlags<const F extends readonly Flag[]>(
  argv: string[],
  flags: F,
  positionals: readonly Positional[] = [],
): FlagValues<F> & { words: string[] } {
  const options = Object.fromEntries([
    ...flags.map((flag) => [
      flag.name,
      flag.type === 'boolean' ? { type: 'boolean', default: false } : { type: 'string', default: flag.default },
    ]),
    ['help', { type: 'boolean', short: 'h', default: false }],
  ]) as NonNullable<ParseArgsConfig['options']>;
  try {
    // parseArgs types its result from a literal options object; this one is built from the table.
    const parsed = parseArgs({ args: argv, options, allowPositionals: positionals.length > 0, strict: true });
    const values = parsed.values as FlagValues<F>;
    if (!values.help && parsed.positionals.length !== positionals.length) {
      throw new UsageError(`expected ${positionals.map((word) => word.name).join(' ')}, got ${parsed.positionals.length} word(s)`);
    }
    return { ...values, words: parsed.positionals };
  } catch (error) {
    throw new UsageError(`${(error as Error).message.split('\n')[0]}; see --help`);
  }
}

/** Where a file the run could not write belongs, in the user's terms ("--out"), and what else they can do. */
export interface WritePlace {
  name: string;
  alternative?: string;
}

/**
 * A write the machine refused (a full disk, above all: images are gigabytes) as one line naming
 * the file and what to do; undefined for anything else. A refused write that names no file is
 * left alone: some write through a file descriptor is not wrapped with its path, a bug.
 */
function refusedWriteError(error: unknown, placeOf: (path: string) => WritePlace): UserError | undefined {
  const code = refusedWrite(error);
  const path = (error as NodeJS.ErrnoException).path;
  if (!code || path === undefined) return undefined;
  const place = placeOf(path);
  const todo =
    code === 'EROFS'
      ? (place.alternative ?? `make ${place.name} writable`)
      : `free space in ${place.name}${place.alternative ? `, or ${place.alternative}` : ''}`;
  return new UserError(`cannot write ${path}: ${REFUSED_WRITES[code]} (${code}); ${todo}`);
}

/**
 * Runs an entry point: a UserError, or a write the machine refused, becomes one `error:` line
 * (`placeOf` says where a refused file belongs); anything else is a bug and keeps its stack.
 * Both exit non-zero: a UsageError 2, the rest 1.
 */
export function runMain(main: (argv: string[]) => Promise<void>, placeOf: (path: string) => WritePlace): void {
  let settled = false;
  // Node exits 0 when nothing is left to wait on, even with main unfinished (a promise no event
  // will settle): that must read as the failure it is, never as a finished build.
  process.once('beforeExit', () => {
    if (settled) return;
    process.stderr.write('internal error (please report): the program stopped before it finished, waiting on nothing\n');
    process.exitCode = 1;
  });
  main(process.argv.slice(2))
    .finally(() => {
      settled = true;
    })
    .catch((error: unknown) => {
      const told = isUserError(error) ? error : refusedWriteError(error, placeOf);
      if (told) {
        process.stderr.write(`error: ${told.message}\n`);
      } else {
        process.stderr.write(`internal error (please report): ${(error as Error)?.stack ?? String(error)}\n`);
      }
      process.exitCode = error instanceof UsageError ? USAGE_EXIT : 1;
    });
}
