/**
 * Retrying failed certificate orders without hammering the CA, across restarts and instances.
 *
 * `nextAttemptTime` is pure: after the 1st, 2nd, 3rd failure of a name the next order waits about 1 min,
 * 10 min, 100 min, then one day after each further failure (Let's Encrypt's advice), or until the CA's
 * Retry-After when that is later. Each delay gets up to 10% of random extra wait so a fleet that failed
 * together does not retry together.
 *
 * `BackoffStore` keeps one JSON value per name in the shared storage at `proximation/state/<name>.json`
 * (on files: under the letsencrypt directory) ({ failures, nextAttemptAt, lastError, lastFailureAt }),
 * written atomically (fenced by the per-name lock when given). Callers write it under
 * the per-name lock. `read` returns undefined for a name that has not failed; a file that does not parse
 * or has the wrong shape counts as absent (it only ever delays an order, so losing it is harmless).
 * Names are lineage names (lineage-name.ts), checked as hostnames before they become paths
 * (normalizeHostname's ProximationError).
 * `record` and `clear` pass on the storage's errors (ERR_FILE_WRITE, ERR_STORAGE_UNAVAILABLE, ERR_LOCK_LOST).
 */
import { normalizeHostname, type Storage, type StorageLock } from '@proximation/shared';
import { lineageHost, lineageName } from './lineage-name.js';

const MINUTE_MS = 60_000;
/** Delays after the 1st, 2nd, 3rd failure; the last one repeats. */
export const BACKOFF_STEPS_MS = [MINUTE_MS, 10 * MINUTE_MS, 100 * MINUTE_MS, 24 * 60 * MINUTE_MS] as const;
const JITTER = 0.1;

export interface BackoffState {
  /** Consecutive failed orders. */
  failures: number;
  nextAttemptAt: Date;
  lastError: string;
  lastFailureAt: Date;
}

/**
 * When the next order may start after the `failures`-th consecutive failure at `now`. `random` in
 * [0, 1) spreads the retries of a fleet; `retryAfter` is the CA's Retry-After, honoured when later.
 */
export function nextAttemptTime(failures: number, now: Date, retryAfter?: Date, random = Math.random()): Date {
  const step = BACKOFF_STEPS_MS[Math.min(Math.max(failures, 1), BACKOFF_STEPS_MS.length) - 1]!;
  const ours = now.getTime() + step * (1 + JITTER * random);
  return new Date(Math.max(ours, retryAfter?.getTime() ?? 0));
}

export function isAttemptAllowed(state: BackoffState | undefined, now: Date): boolean {
  return state === undefined || now.getTime() >= state.nextAttemptAt.getTime();
}

export class BackoffStore {
  constructor(private readonly storage: Storage) {}

  private key(lineage: string): string {
    // The name becomes a key (on files a path): only a lineage name of a normalised hostname may.
    return `proximation/state/${lineageName(normalizeHostname(lineageHost(lineage), { allowWildcard: true, field: 'certificate name' }))}.json`;
  }

  async read(name: string): Promise<BackoffState | undefined> {
    const content = await this.storage.read(this.key(name));
    if (content === undefined) return undefined;
    try {
      const raw = JSON.parse(content.toString('utf8')) as Record<string, unknown>;
      const state = {
        failures: raw.failures,
        nextAttemptAt: new Date(String(raw.nextAttemptAt)),
        lastError: raw.lastError,
        lastFailureAt: new Date(String(raw.lastFailureAt)),
      };
      if (
        typeof state.failures !== 'number' || !Number.isInteger(state.failures) || state.failures < 1 ||
        typeof state.lastError !== 'string' || Number.isNaN(state.nextAttemptAt.getTime()) || Number.isNaN(state.lastFailureAt.getTime())
      ) {
        return undefined;
      }
      return state as BackoffState;
    } catch {
      return undefined;
    }
  }

  /** Counts one more failure of `name` and returns the new state. */
  async record(name: string, error: string, now: Date, retryAfter?: Date, fence?: StorageLock): Promise<BackoffState> {
    const failures = ((await this.read(name))?.failures ?? 0) + 1;
    const state: BackoffState = { failures, nextAttemptAt: nextAttemptTime(failures, now, retryAfter), lastError: error, lastFailureAt: now };
    await this.storage.write(this.key(name), `${JSON.stringify(state, null, 2)}\n`, { mode: 0o644, ...(fence === undefined ? {} : { fence }) });
    return state;
  }

  /** Forgets the failures of `name` after a success. */
  async clear(name: string): Promise<void> {
    await this.storage.delete(this.key(name));
  }
}
