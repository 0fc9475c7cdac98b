/**
 * An error caused by the user's input (a bad image, a bad config, an unreachable URL).
 * build.ts prints its message as one line and exits non-zero; anything else is a bug
 * and gets a stack trace.
 */
export class UserError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'UserError';
  }
}

export const isUserError = (error: unknown): error is UserError => error instanceof UserError;
