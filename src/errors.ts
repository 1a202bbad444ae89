// Errors that reach the user: one line, a chosen exit code, never a stack trace.

/** An error whose message is fit to print as is; `code` becomes the exit status. */
export class CrError extends Error {
  constructor(message: string, readonly code: number = 1) {
    super(message);
    this.name = 'CrError';
  }
}

/** Exit status for bad input: a bad image, bad arguments, a table that cannot exist. */
export const EXIT_BAD_INPUT = 2;

/** Raise a bad-input error. */
export function badInput(message: string): never {
  throw new CrError(message, EXIT_BAD_INPUT);
}

/** `ENOENT (open)`: a node fs or bridge error in a few words, for one-line messages. */
export const errMessage = (err: unknown): string => {
  const e = err as NodeJS.ErrnoException;
  return e.code ? `${e.code} (${e.syscall ?? 'fs'})` : String(err);
};
