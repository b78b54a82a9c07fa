/**
 * Errors that cross a module boundary carry a stable `code` (for callers and tests to branch on)
 * and a message that names the file, field, host or value involved and says what to do about it.
 * Codes are never renamed once released; messages may improve.
 */
export class ProximationError extends Error {
  readonly code: string;

  constructor(code: string, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'ProximationError';
    this.code = code;
  }
}

export function isProximationError(err: unknown, code?: string): err is ProximationError {
  return err instanceof ProximationError && (code === undefined || err.code === code);
}

/** The message of anything thrown, for logs and CLI output. */
export function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/** True if `err` is a Node system error with the given `code` (ENOENT, EEXIST, ...). */
export function isErrnoCode(err: unknown, code: string): boolean {
  return err instanceof Error && (err as NodeJS.ErrnoException).code === code;
}
