/** What the command-line entry points (build.ts, inspect) share: option parsing and how they fail. */
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { isUserError, UserError } from './errors.js';

type Options = NonNullable<ParseArgsConfig['options']>;

/** The `--name value` options of argv; a mistake in them is the user's, told in one line. */
export function parseOptions<const O extends Options>(argv: string[], options: O) {
  try {
    return parseArgs({ args: argv, options, allowPositionals: false, strict: true }).values;
  } catch (error) {
    throw new UserError(`${(error as Error).message.split('\n')[0]}; see --help`);
  }
}

/**
 * Runs an entry point: a UserError becomes one `error:` line, anything else is a bug and keeps
 * its stack; both exit non-zero.
 */
export function runMain(main: (argv: string[]) => Promise<void>): void {
  main(process.argv.slice(2)).catch((error: unknown) => {
    if (isUserError(error)) {
      process.stderr.write(`error: ${error.message}\n`);
    } else {
      process.stderr.write(`internal error (please report): ${(error as Error)?.stack ?? String(error)}\n`);
    }
    process.exitCode = 1;
  });
}
