/**
 * Where the fleet's shared state lives: one interface, two backends (a directory shared over NFS/EFS in
 * certbot's layout, `file-backend.ts`; a Redis server, `redis-backend.ts`). The contract, in the manner of
 * certmagic's Storage and Locker, which every backend passes (shared/test/storage-contract.ts):
 *
 * Keys are relative slash-separated paths such as `live/example.com/fullchain.pem` or
 * `proximation/routes.json`: non-empty segments, no `.` or `..`, no backslash or NUL, no leading slash
 * (`checkStorageKey`, ERR_STORAGE_KEY). The file backend maps a key to the same path under its
 * directory, so the layout is exactly the one certbot reads and renews.
 *
 * - `read`: the complete value last written, or `undefined` when the key does not exist.
 * - `write`: atomic. A reader sees the complete previous value or the complete new one, never a mix or
 *   nothing (file: temp + fsync + rename + fsync of the directory; Redis: one MULTI/EXEC or Lua script).
 *   When it resolves the value is as durable as the backend makes it (file: on stable storage; Redis: as
 *   its persistence is configured). Concurrent writers do not interleave; the last one wins. `mode` sets
 *   the file's permission bits (file backend only; default 0o644). With `fence`, the write happens only
 *   while that lock is still held, and otherwise throws ERR_LOCK_LOST with nothing written. On Redis the
 *   check and the write are one atomic script, so a holder that stalled past its lease and lost it to
 *   another can never overwrite the new holder's work; on files it is the best a directory allows (the
 *   holder's own lease clock is checked right before the rename, see lock.ts). With `ttlMs` the key is
 *   a lease by itself (heartbeats, member leases): on Redis it expires `ttlMs` after the write (by
 *   Redis's clock; then `read` answers undefined and `list` leaves it out), and every write sets its
 *   expiry anew (a write without `ttlMs` makes it permanent). Files have no expiry: the file stays
 *   until it is rewritten or deleted, so a value written with `ttlMs` must carry its own expiry time,
 *   by which readers judge it on both backends (the TTL then only removes what readers ignore already).
 * - `link(key, target)`: makes `key` an alias of the existing key `target` (certbot's live/ links to
 *   archive/): `read(key)` then answers the target's value and `readLink(key)` the target. Atomic as a
 *   write is (file: a relative symlink created under a temporary name and renamed over; Redis: one Lua
 *   script); `fence` as for `write`. Targets are written once and never changed (certbot's archive/ is
 *   immutable): on Redis the alias holds the target's value as of the link. A `write` to a link key
 *   replaces the link with a plain value. ERR_STORAGE_LINK when `target` does not exist.
 * - `readLink(key)`: the target of a link, undefined for a plain key or a missing one.
 * - `delete`: removes the key (a link, not its target); a missing key is not an error.
 * - `list(prefix)`: every key under `prefix/` (any depth), links included, sorted; for the empty prefix
 *   every key. The file backend leaves out its own temp files (names starting with `.`).
 * - `lock(key)`: a lease lock named by a key (on files, the lock file at that path: see lock.ts). It
 *   resolves once the caller holds it, or throws ERR_LOCK_TIMEOUT naming the key and the holder after
 *   `timeoutMs`. The lease lasts 2 `refreshMs` and the holder refreshes it every `refreshMs`; refresh and
 *   release check the holder's token, so they never extend or remove another's lease. A holder that dies
 *   leaves a lease that expires after 2 `refreshMs`. `lost` turns true once the lease may belong to
 *   another (a refresh found another token, or 2 refresh periods passed without a successful refresh by
 *   the holder's clock); check it, or better write with `fence`, before committing. Not re-entrant.
 *   Callers re-read what they change after taking the lock.
 * - `watch(listener)`: change notification, as a hint to re-read, never as the data. With `notifies`
 *   true (Redis: pub/sub on the prefix's channel), `listener(key)` is called for each write or delete
 *   by any handle, typically within milliseconds of it (well under a second); messages published while
 *   this handle was disconnected are lost, so after a reconnection `listener(undefined)` says "anything
 *   may have changed". Callers keep a periodic full re-read to repair what a missed message would leave.
 *   With `notifies` false (files: NFS delivers no events for another machine's writes) the listener is
 *   never called and polling is the watch. Returns the function that stops the listener.
 * - `close`: ends the backend's connections and timers; locks still held are released first by their
 *   callers (`withStorageLock` does it in `finally`).
 *
 * Failures throw ProximationError: ERR_FILE_READ / ERR_FILE_WRITE / ERR_LOCK_IO on files,
 * ERR_STORAGE_UNAVAILABLE on Redis, each naming the key and where it lives (a Redis URL never with its
 * password).
 */
import type { LockOptions } from '../lock.js';
import { ProximationError } from '../errors.js';

export interface StorageWriteOptions {
  /** Permission bits of the file (file backend only); default 0o644. */
  mode?: number;
  /** Write only while this lock is held; ERR_LOCK_LOST otherwise. */
  fence?: StorageLock;
  /** The key may vanish this long after the write (Redis: it does; files: it stays). Not for links. */
  ttlMs?: number;
  /**
   * Permission bits of directories created for the key (file backend only; certbot makes live/,
   * archive/ and accounts/ 0700). Default: the process umask's.
   */
  dirMode?: number;
}

export interface StorageLock {
  readonly key: string;
  /** True once the lease may belong to someone else; see the module header. */
  readonly lost: boolean;
  release(): Promise<void>;
}

export interface StorageLockOptions extends LockOptions {
  /** As for writes: permission bits of the directories created for the lock file (file backend only). */
  dirMode?: number;
}

export interface Storage {
  /** Where the state lives, for messages: a directory, or a Redis URL without its password. */
  readonly location: string;
  read(key: string): Promise<Buffer | undefined>;
  write(key: string, data: string | Uint8Array, options?: StorageWriteOptions): Promise<void>;
  link(key: string, target: string, options?: Omit<StorageWriteOptions, 'mode' | 'ttlMs'>): Promise<void>;
  readLink(key: string): Promise<string | undefined>;
  delete(key: string): Promise<void>;
  list(prefix: string): Promise<string[]>;
  lock(key: string, options?: StorageLockOptions): Promise<StorageLock>;
  /** Whether `watch` delivers changes (else callers poll). */
  readonly notifies: boolean;
  watch(listener: (key: string | undefined) => void): Promise<() => void>;
  close(): Promise<void>;
}

export async function withStorageLock<T>(
  storage: Storage,
  key: string,
  fn: (lock: StorageLock) => Promise<T>,
  options?: StorageLockOptions,
): Promise<T> {
  const lock = await storage.lock(key, options);
  try {
    return await fn(lock);
  } finally {
    await lock.release();
  }
}

export function checkStorageKey(key: string, what = 'storage key'): string {
  const segments = key.split('/');
  const bad =
    key.length === 0 ||
    key.includes('\\') ||
    key.includes('\0') ||
    segments.some((segment) => segment === '' || segment === '.' || segment === '..');
  if (bad) {
    throw new ProximationError(
      'ERR_STORAGE_KEY',
      `Invalid ${what} ${JSON.stringify(key)}: it must be a relative path of non-empty segments separated by "/", without ".", "..", "\\" or NUL.`,
    );
  }
  return key;
}

/** The prefix given to `list`, checked; the empty prefix means every key. */
export function checkStoragePrefix(prefix: string): string {
  return prefix === '' ? prefix : checkStorageKey(prefix, 'storage prefix');
}

export function linkTargetMissing(key: string, target: string, location: string): ProximationError {
  return new ProximationError('ERR_STORAGE_LINK', `Cannot link ${key} to ${target} in ${location}: ${target} does not exist. Write the target first.`);
}

export function lockLostError(lockKey: string, key: string, location: string): ProximationError {
  return new ProximationError(
    'ERR_LOCK_LOST',
    `Lost the lock ${lockKey} before writing ${key} in ${location} (this process stalled past its lease, so another may have taken over); nothing was written. Retry.`,
  );
}
