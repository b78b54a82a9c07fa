/**
 * A lease lock on a file in a shared directory, usable between processes on different machines that
 * share the directory over NFS/EFS (no flock/fcntl, which NFS implements unreliably or not at all).
 *
 * Mechanism: the lock is the file `path`, created exclusively (`wx`) and holding JSON
 * `{owner, token, acquiredAt, refreshedAt, refreshMs}` (times in epoch ms). The holder rewrites it every
 * `refreshMs` via temp file + rename (never in place, so readers never see it empty), after checking the
 * token is still its own. A lease not refreshed for 2 of its holder's `refreshMs` is stale (so is an
 * empty or garbled lock file whose mtime is older than 2 of the waiter's `refreshMs`: its creator died
 * between create and write). A waiter takes a stale lease over by renaming the file to a unique name
 * (only one rename wins), checking the moved file is the one it judged stale (if not, it links it back),
 * deleting it and trying the exclusive create again. Waiters poll every 50-250 ms (jittered).
 *
 * Guarantees and limits:
 * - `acquireLock` resolves once the caller holds the lease, or throws ProximationError
 *   `ERR_LOCK_TIMEOUT` (naming the path and the current owner) after `timeoutMs`, or `signal.reason`
 *   when aborted. The parent directory is created if missing. Not re-entrant.
 * - `lock.lost` turns true when a refresh finds another token (or no file), or when the lease is older
 *   than 2 refresh periods by the holder's clock (event loop stalled, refreshes failing), because a
 *   waiter may have taken it over by then. Once lost, it stays lost and refreshing stops. Check it
 *   right before committing work done under the lock.
 * - A lease is a time-bound promise, not a kernel lock: two waiters can both judge a lease stale, and a
 *   holder can stall past its lease. So callers must re-read the state they change after acquiring
 *   (never reuse what they read before), and check `lost` before writing.
 * - Staleness compares the holder's timestamps (and the file server's mtimes) with the waiter's clock:
 *   machines sharing a lock need synchronised clocks (NTP), with skew well below `refreshMs`.
 * - Refresh timers are unref()ed: holding a lock does not keep a process alive. A process that exits
 *   without releasing leaves a lease that becomes stale after 2 refresh periods.
 * - `release` stops refreshing and deletes the file only if it still holds our token and the lease has
 *   not expired (an expired lease may already belong to someone else). Calling it again does nothing.
 *   `withLock` releases in `finally`.
 * - I/O failures while acquiring or releasing throw ProximationError `ERR_LOCK_IO` naming the path.
 * - `onWait` is told, at each poll while another holds the lock, who holds it and for how long this
 *   waiter has waited; it must not throw.
 */
import { randomBytes } from 'node:crypto';
import { link, mkdir, open, rename, unlink } from 'node:fs/promises';
import type { FileHandle } from 'node:fs/promises';
import { hostname } from 'node:os';
import { dirname } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import * as z from 'zod';
import { formatDuration } from './duration.js';
import { ProximationError, errorMessage, isErrnoCode } from './errors.js';
import { writeFileAtomic } from './file-storage.js';

export interface Lock {
  readonly path: string;
  /** True once the lease may belong to someone else; see the module header. */
  readonly lost: boolean;
  release(): Promise<void>;
}

export interface LockOptions {
  /** How often the holder refreshes its lease; it is stale after 2 periods. Default 5000. */
  refreshMs?: number;
  /** How long to wait for the lock before ERR_LOCK_TIMEOUT; 0 tries once. Default 60000. */
  timeoutMs?: number;
  /** Who holds the lock, shown to waiters. Default `hostname:pid`. */
  owner?: string;
  signal?: AbortSignal;
  /** Called each time the lock is found held by another (every 50-250 ms while waiting), for progress. */
  onWait?: (wait: LockWait) => void;
}

/** A waiter's view of the lock it waits for. */
export interface LockWait {
  readonly path: string;
  /** Who holds it and how fresh the lease is, such as "web-1:42 (lease last refreshed 1s ago, ...)". */
  readonly holder: string;
  readonly waitedMs: number;
  readonly timeoutMs: number;
}

const DEFAULT_REFRESH_MS = 5_000;
const DEFAULT_TIMEOUT_MS = 60_000;
const POLL_MIN_MS = 50;
const POLL_JITTER_MS = 200;

// Not strict: a newer version may add fields, and its lease must still be honoured.
const leaseSchema = z.object({
  owner: z.string(),
  token: z.string().min(1),
  acquiredAt: z.number(),
  refreshedAt: z.number(),
  refreshMs: z.number().positive(),
});
type Lease = z.infer<typeof leaseSchema>;

/** What a waiter saw at `path`; `lease` is undefined when the file is empty or garbled. */
interface LockFileState {
  readonly raw: Buffer;
  readonly mtimeMs: number;
  readonly lease: Lease | undefined;
}

export async function acquireLock(path: string, options: LockOptions = {}): Promise<Lock> {
  const refreshMs = options.refreshMs ?? DEFAULT_REFRESH_MS;
  const timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  const owner = options.owner ?? `${hostname()}:${process.pid}`;
  if (!Number.isSafeInteger(refreshMs) || refreshMs <= 0) {
    throw new ProximationError('ERR_INVALID_ARGUMENT', `Lock refreshMs must be a positive whole number of milliseconds, got ${refreshMs}.`);
  }
  if (!Number.isFinite(timeoutMs) || timeoutMs < 0) {
    throw new ProximationError('ERR_INVALID_ARGUMENT', `Lock timeoutMs must be a non-negative number of milliseconds, got ${timeoutMs}.`);
  }
  const startedAt = Date.now();
  const deadline = startedAt + timeoutMs;
  await mkdir(dirname(path), { recursive: true }).catch((err: unknown) => {
    throw ioError(path, err);
  });

  for (;;) {
    options.signal?.throwIfAborted();
    const now = Date.now();
    const lease: Lease = { owner, token: randomBytes(16).toString('hex'), acquiredAt: now, refreshedAt: now, refreshMs };
    if (await tryCreate(path, lease)) return new LeaseLock(path, lease);

    const current = await readLockFile(path);
    if (current === undefined) continue; // released between our create and our read
    // Losing a takeover race means another waiter is mid-takeover: give it time to create its lock.
    if (isStale(current, refreshMs) && (await takeOver(path, current))) continue;
    const remaining = deadline - Date.now();
    if (remaining <= 0) throw timeoutError(path, current, timeoutMs, refreshMs);
    options.onWait?.({ path, holder: describeHolder(current, refreshMs), waitedMs: Date.now() - startedAt, timeoutMs });
    await pause(Math.min(remaining, POLL_MIN_MS + Math.random() * POLL_JITTER_MS), options.signal);
  }
}

export async function withLock<T>(path: string, fn: (lock: Lock) => Promise<T>, options?: LockOptions): Promise<T> {
  const lock = await acquireLock(path, options);
  try {
    return await fn(lock);
  } finally {
    await lock.release();
  }
}

/**
 * The holder's side of a lease refreshed every `refreshMs` and lost after 2 periods without a successful
 * refresh by the holder's clock (both backends' locks): the refresh timer (unref()ed), `lost`, and a
 * release that waits for a refresh in flight and gives the lease up only while it may still be ours.
 * Subclasses say how to refresh (`renew`: false once the lease is another's; a throw is transient and
 * retried next period) and how to give it up (`remove`, which must check the token itself).
 */
export abstract class RefreshedLease {
  readonly refreshMs: number;
  #refreshedAt: number;
  #lostConfirmed = false;
  #released = false;
  #timer: NodeJS.Timeout | undefined;
  #refreshing: Promise<void> | undefined;

  constructor(refreshMs: number, refreshedAt: number) {
    this.refreshMs = refreshMs;
    this.#refreshedAt = refreshedAt;
    this.#schedule();
  }

  get lost(): boolean {
    return this.#lostConfirmed || this.expired(Date.now());
  }

  async release(): Promise<void> {
    if (this.#released) return;
    this.#released = true;
    clearTimeout(this.#timer);
    await this.#refreshing;
    if (this.lost) return;
    await this.remove();
  }

  protected expired(now: number): boolean {
    return now - this.#refreshedAt >= 2 * this.refreshMs;
  }

  /** Refreshes the lease as of `now`; false when it is no longer ours (or expired meanwhile). */
  protected abstract renew(now: number): Promise<boolean>;
  protected abstract remove(): Promise<void>;

  #schedule(): void {
    this.#timer = setTimeout(() => {
      this.#refreshing = this.#refresh().finally(() => {
        this.#refreshing = undefined;
        if (!this.#released && !this.#lostConfirmed) this.#schedule();
      });
    }, this.refreshMs);
    this.#timer.unref();
  }

  /** Never rejects: a failed refresh is retried next period, and failures that outlast the lease make it expire. */
  async #refresh(): Promise<void> {
    try {
      const now = Date.now();
      if (this.expired(now) || !(await this.renew(now))) {
        this.#lostConfirmed = true;
        return;
      }
      this.#refreshedAt = now;
    } catch {
      // Transient failure (an NFS hiccup, Redis unreachable for now): see the doc comment.
    }
  }
}

class LeaseLock extends RefreshedLease implements Lock {
  readonly path: string;
  readonly #lease: Lease;

  constructor(path: string, lease: Lease) {
    super(lease.refreshMs, lease.refreshedAt);
    this.path = path;
    this.#lease = lease;
  }

  protected async renew(now: number): Promise<boolean> {
    const current = await readLockFile(this.path);
    if (current?.lease?.token !== this.#lease.token || this.expired(Date.now())) return false;
    await writeFileAtomic(this.path, JSON.stringify({ ...this.#lease, refreshedAt: now }));
    return true;
  }

  protected async remove(): Promise<void> {
    const current = await readLockFile(this.path);
    if (current?.lease?.token !== this.#lease.token) return;
    await removeIfExists(this.path);
  }
}

/** Exclusive create; false if the file exists. An empty file left by a failed write is removed. */
async function tryCreate(path: string, lease: Lease): Promise<boolean> {
  let handle: FileHandle;
  try {
    handle = await open(path, 'wx', 0o644);
  } catch (err) {
    if (isErrnoCode(err, 'EEXIST')) return false;
    throw ioError(path, err);
  }
  try {
    await handle.writeFile(JSON.stringify(lease));
  } catch (err) {
    await handle.close();
    await removeIfExists(path);
    throw ioError(path, err);
  }
  await handle.close();
  return true;
}

async function readLockFile(path: string): Promise<LockFileState | undefined> {
  let handle: FileHandle;
  try {
    handle = await open(path, 'r');
  } catch (err) {
    if (isErrnoCode(err, 'ENOENT')) return undefined;
    throw ioError(path, err);
  }
  try {
    const { mtimeMs } = await handle.stat();
    const raw = await handle.readFile();
    return { raw, mtimeMs, lease: parseLease(raw) };
  } catch (err) {
    throw ioError(path, err);
  } finally {
    await handle.close();
  }
}

function parseLease(raw: Buffer): Lease | undefined {
  try {
    return leaseSchema.parse(JSON.parse(raw.toString('utf8')));
  } catch {
    return undefined;
  }
}

function isStale(state: LockFileState, ownRefreshMs: number): boolean {
  const now = Date.now();
  return state.lease === undefined
    ? now - state.mtimeMs > 2 * ownRefreshMs
    : now - state.lease.refreshedAt > 2 * state.lease.refreshMs;
}

/** Removes the stale lock file `judged`; false if someone else changed or moved it first. */
async function takeOver(path: string, judged: LockFileState): Promise<boolean> {
  const aside = `${path}.stale-${randomBytes(6).toString('hex')}`;
  try {
    await rename(path, aside);
  } catch (err) {
    if (isErrnoCode(err, 'ENOENT')) return false;
    throw ioError(path, err);
  }
  try {
    const moved = await readLockFile(aside);
    if (moved !== undefined && isSameLockFile(moved, judged)) return true;
    // We moved a lease that changed after we judged it (its holder refreshed just in time, or another
    // waiter took over and created a new one): put it back, unless a newer lock was created meanwhile.
    await link(aside, path).catch((err: unknown) => {
      if (!isErrnoCode(err, 'EEXIST')) throw ioError(path, err);
    });
    return false;
  } finally {
    await removeIfExists(aside);
  }
}

function isSameLockFile(a: LockFileState, b: LockFileState): boolean {
  // A parsed lease is identified by its token and refreshedAt; a garbled file only by content and mtime.
  return a.raw.equals(b.raw) && (a.lease !== undefined || a.mtimeMs === b.mtimeMs);
}

function describeHolder(current: LockFileState, ownRefreshMs: number): string {
  return current.lease === undefined
    ? `an unknown owner (the lock file is empty or garbled; it counts as abandoned ${formatDuration(2 * ownRefreshMs)} after its last change)`
    : `${current.lease.owner} (lease last refreshed ${formatDuration(Math.max(0, Date.now() - current.lease.refreshedAt))} ago, ` +
        `expires ${formatDuration(2 * current.lease.refreshMs)} after its last refresh)`;
}

function timeoutError(path: string, current: LockFileState, timeoutMs: number, ownRefreshMs: number): ProximationError {
  return new ProximationError(
    'ERR_LOCK_TIMEOUT',
    `Timed out after ${formatDuration(timeoutMs)} waiting for the lock ${path}, held by ${describeHolder(current, ownRefreshMs)}. ` +
      'Retry later, or stop the holder if it is stuck; a lock left by a crashed process frees itself when its lease expires.',
  );
}

async function pause(ms: number, signal: AbortSignal | undefined): Promise<void> {
  try {
    await delay(ms, undefined, { signal });
  } catch (err) {
    signal?.throwIfAborted();
    throw err;
  }
}

function ioError(path: string, err: unknown): ProximationError {
  return new ProximationError('ERR_LOCK_IO', `Lock file ${path}: ${errorMessage(err)}. Check that the directory is writable.`, { cause: err });
}

/** Unlinks `path`; a file that is already gone (moved by a waiter, say) is not an error. */
async function removeIfExists(path: string): Promise<void> {
  try {
    await unlink(path);
  } catch (err) {
    if (!isErrnoCode(err, 'ENOENT')) throw ioError(path, err);
  }
}
