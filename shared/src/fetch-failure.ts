/**
 * Says in words why a `fetch` rejected, for messages that name an upstream or a metadata endpoint:
 * "did not answer within 2s", "refused the connection (ECONNREFUSED)", and so on. Never throws.
 */
import { formatDuration } from './duration.js';

const BY_CODE: Partial<Record<string, string>> = {
  ECONNREFUSED: 'refused the connection',
  ECONNRESET: 'closed the connection before answering',
  UND_ERR_SOCKET: 'closed the connection before answering',
  ENOTFOUND: 'has a host name that does not resolve',
  EAI_AGAIN: 'has a host name that could not be resolved now',
  EHOSTUNREACH: 'is unreachable from here',
  ENETUNREACH: 'is on a network unreachable from here',
};

export function describeFetchFailure(err: unknown, timeoutMs: number): string {
  if (err instanceof Error && (err.name === 'TimeoutError' || err.name === 'AbortError')) {
    return `did not answer within ${formatDuration(timeoutMs)}`;
  }
  // fetch wraps the socket error in a TypeError("fetch failed") whose cause says what happened.
  const cause = err instanceof Error && err.cause instanceof Error ? err.cause : err;
  const code = cause instanceof Error ? (cause as NodeJS.ErrnoException).code : undefined;
  const known = code === undefined ? undefined : BY_CODE[code];
  if (known !== undefined) return `${known} (${code})`;
  const message = cause instanceof Error ? cause.message : String(cause);
  return `failed: ${message}${code === undefined || message.includes(code) ? '' : ` (${code})`}`;
}
