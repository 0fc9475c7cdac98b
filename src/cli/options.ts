/** What the command-line entry points (build.ts, inspect) share: option parsing and how they fail. */
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { isUserError, REFUSED_WRITES, refusedWrite, UserError } from '../errors.js';

type Options = NonNullable<ParseArgsConfig['options']>;

/** The `--name value` options of argv and, where allowed, its other words; a mistake in them is the user's, told in one line. */
export function parseArguments<const O extends Options>(argv: string[], options: O, allowPositionals = false) {
  try {
    return parseArgs({ args: argv, options, allowPositionals, strict: true });
  } catch (error) {
    throw new UserError(`${(error as Error).message.split('\n')[0]}; see --help`);
  }
}

export const parseOptions = <const O extends Options>(argv: string[], options: O) => parseArguments(argv, options).values;

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
    code === 'EROFS' ? (place.alternative ?? `make ${place.name} writable`) : `free space in ${place.name}${place.alternative ? `, or ${place.alternative}` : ''}`;
  return new UserError(`cannot write ${path}: ${REFUSED_WRITES[code]} (${code}); ${todo}`);
}

/**
 * Runs an entry point: a UserError, or a write the machine refused, becomes one `error:` line
 * (`placeOf` says where a refused file belongs); anything else is a bug and keeps its stack.
 * Both exit non-zero.
 */
export function runMain(main: (argv: string[]) => Promise<void>, placeOf: (path: string) => WritePlace): void {
  main(process.argv.slice(2)).catch((error: unknown) => {
    const told = isUserError(error) ? error : refusedWriteError(error, placeOf);
    if (told) {
      process.stderr.write(`error: ${told.message}\n`);
    } else {
      process.stderr.write(`internal error (please report): ${(error as Error)?.stack ?? String(error)}\n`);
    }
    process.exitCode = 1;
  });
}
