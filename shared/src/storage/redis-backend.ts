/**
 * The Redis backend of storage.ts (`redis://[user:password@]host:port[/db]`, or `rediss://` for TLS), through ioredis. Layout under the key prefix (so several fleets share one Redis):
 *
 * - `<prefix>v:<key>`: the value, bytes as written;
 * - `<prefix>link:<key>`: for a link, the target's key (its value is then the target's, copied by the
 *   linking script);
 * - `<prefix>keys`: a sorted set of every key (score 0), so `list` is one ZRANGEBYLEX, never a SCAN;
 * - `<prefix>expiring`: the keys written with `ttlMs`, scored by when they expire (this client's clock);
 *   `list` first drops from both sets those whose value Redis has expired, so the index does not grow
 *   with the heartbeats of instances long gone (a key's own expiry is Redis's: the score only says
 *   when to look);
 * - `<prefix>lock:<key>`: a lock, `<token> <owner>` with expiry 2 `refreshMs` (SET NX PX); refresh,
 *   release and fenced writes are Lua scripts that first check the token, so each is atomic with that
 *   check;
 * - `<prefix>changes`: the pub/sub channel every write and delete publishes the key on.
 *
 * Commands while disconnected fail at once with ERR_STORAGE_UNAVAILABLE (no offline queue, so a caller
 * never waits on a queue that may outlive its deadline); the client reconnects with backoff (100 ms
 * doubling to 5 s). `connectRedisStorage` resolves once the server answered a PING, and otherwise throws
 * ERR_STORAGE_UNAVAILABLE or ERR_STORAGE_AUTH naming the URL without its password.
 */
import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import { setTimeout as delay } from 'node:timers/promises';
import { Redis } from 'ioredis';
import type { RedisOptions } from 'ioredis';
import { formatDuration } from '../duration.js';
import { ProximationError, errorMessage } from '../errors.js';
import { RefreshedLease } from '../lock.js';
import { checkStorageKey, checkStoragePrefix, linkTargetMissing, lockLostError } from './storage.js';
import type { Storage, StorageLock, StorageLockOptions, StorageWriteOptions } from './storage.js';

export interface RedisStorageOptions {
  /** The setting or flag the URL came from, for messages. */
  what?: string;
  /** Prepended to every key: letters, digits and `:_.-` only. Default `proximation:`. */
  keyPrefix?: string;
  /** Extra TLS settings for `rediss://` (a private CA, say). */
  tls?: RedisOptions['tls'];
  /** How long connecting may take at start. Default 10 s. */
  connectTimeoutMs?: number;
}

export const DEFAULT_REDIS_KEY_PREFIX = 'proximation:';
const DEFAULT_REFRESH_MS = 5_000;
const DEFAULT_TIMEOUT_MS = 60_000;

// KEYS: lock, value, index, channel, link, expiring; ARGV: token, bytes, key, ttl ms ('' for none), expiry score.
const FENCED_SET = `
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
if ARGV[4] == '' then
  redis.call('SET', KEYS[2], ARGV[2])
  redis.call('ZREM', KEYS[6], ARGV[3])
else
  redis.call('SET', KEYS[2], ARGV[2], 'PX', ARGV[4])
  redis.call('ZADD', KEYS[6], ARGV[5], ARGV[3])
end
redis.call('DEL', KEYS[5])
redis.call('ZADD', KEYS[3], 0, ARGV[3])
redis.call('PUBLISH', KEYS[4], ARGV[3])
return 1`;
// KEYS: index, expiring; ARGV: now (ms), the value keys' prefix, the range's min and max.
// The value keys are built here, not passed in KEYS: fine on one server (the client does not speak Cluster).
const LIST = `
for _, key in ipairs(redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', ARGV[1])) do
  if redis.call('EXISTS', ARGV[2] .. key) == 0 then
    redis.call('ZREM', KEYS[1], key)
    redis.call('ZREM', KEYS[2], key)
  end
end
return redis.call('ZRANGEBYLEX', KEYS[1], ARGV[3], ARGV[4])`;
// KEYS: lock, target value, value, link, index, channel; ARGV: token ('' without a fence), target, key.
const LINK = `
if ARGV[1] ~= '' and redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
local value = redis.call('GET', KEYS[2])
if not value then return -1 end
redis.call('SET', KEYS[3], value)
redis.call('SET', KEYS[4], ARGV[2])
redis.call('ZADD', KEYS[5], 0, ARGV[3])
redis.call('PUBLISH', KEYS[6], ARGV[3])
return 1`;
const REFRESH = `
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
return redis.call('PEXPIRE', KEYS[1], ARGV[2])`;
const RELEASE = `
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
return redis.call('DEL', KEYS[1])`;

/** The URL for messages: the password (and user) replaced, so it can be logged. */
export function redactRedisUrl(url: URL): string {
  const copy = new URL(url.href);
  if (copy.password !== '') copy.password = '***';
  return copy.href;
}

export function parseRedisUrl(text: string, what = 'storage URL'): URL {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw new ProximationError('ERR_STORAGE_URL', `${what}: ${JSON.stringify(text.replace(/:[^:@/]*@/, ':***@'))} is not a URL; use redis://[user:password@]host:port[/db], rediss://... for TLS, or a directory path.`);
  }
  const db = url.pathname.replace(/^\//, '');
  if ((url.protocol !== 'redis:' && url.protocol !== 'rediss:') || url.hostname === '' || (db !== '' && !/^\d+$/.test(db)) || url.search !== '' || url.hash !== '') {
    throw new ProximationError(
      'ERR_STORAGE_URL',
      `${what}: ${redactRedisUrl(url)} is not a Redis URL; use redis://[user:password@]host:port[/db] or rediss://... for TLS (the path may only be a database number).`,
    );
  }
  return url;
}

export function checkRedisKeyPrefix(prefix: string, what = 'Redis key prefix'): string {
  if (!/^[A-Za-z0-9:_.-]{1,64}$/.test(prefix)) {
    throw new ProximationError(
      'ERR_STORAGE_PREFIX',
      `${what}: ${JSON.stringify(prefix)} is not a key prefix; use 1 to 64 letters, digits and ":_.-" (no spaces), such as "proximation:prod:".`,
    );
  }
  return prefix;
}

export async function connectRedisStorage(urlText: string, options: RedisStorageOptions = {}): Promise<RedisStorage> {
  const url = parseRedisUrl(urlText, options.what);
  const prefix = checkRedisKeyPrefix(options.keyPrefix ?? DEFAULT_REDIS_KEY_PREFIX);
  const location = redactRedisUrl(url);
  const client = new Redis(url.href, {
    lazyConnect: true,
    enableOfflineQueue: false,
    maxRetriesPerRequest: 1,
    connectTimeout: options.connectTimeoutMs ?? 10_000,
    retryStrategy: (times) => Math.min(100 * 2 ** Math.min(times, 6), 5_000),
    ...(url.protocol === 'rediss:' ? { tls: options.tls ?? {} } : {}),
  });
  // Errors reach the callers of the commands; the client's own 'error' events would otherwise crash.
  // At start the event carries the reason (WRONGPASS, ECONNREFUSED) that connect() reports only as
  // "Connection is closed".
  let firstError: unknown;
  client.on('error', (err: unknown) => (firstError ??= err));
  try {
    await client.connect();
    await client.ping();
  } catch (caught) {
    client.disconnect();
    const err = firstError ?? caught;
    const auth = /WRONGPASS|NOAUTH|invalid password|invalid username/i.test(errorMessage(err));
    throw new ProximationError(
      auth ? 'ERR_STORAGE_AUTH' : 'ERR_STORAGE_UNAVAILABLE',
      auth
        ? `Redis at ${location} refused the credentials: ${errorMessage(err)}. Check the password (and user) in ${options.what ?? 'the URL'}.`
        : `Could not reach Redis at ${location}: ${errorMessage(err)}. Check the address, that Redis runs, and for rediss:// its certificate.`,
      { cause: err },
    );
  }
  return new RedisStorage(client, prefix, location);
}

export class RedisStorage implements Storage {
  readonly location: string;
  readonly prefix: string;
  readonly notifies = true;
  readonly #client: Redis;
  readonly #listeners = new Set<(key: string | undefined) => void>();
  #subscriber: Promise<Redis> | undefined;

  constructor(client: Redis, prefix: string, location: string) {
    this.#client = client;
    this.prefix = prefix;
    this.location = location;
    // Connected already: every 'ready' from now on is a reconnection. The subscriber's own reconnection
    // says "anything may have changed" too, but a watcher re-reading then goes through this client,
    // which may still be away (its backoff is its own): it is told again once this one is back.
    client.on('ready', () => this.#notify(undefined));
  }

  /** The channel writes and deletes publish their key on. */
  get changesChannel(): string {
    return `${this.prefix}changes`;
  }

  async read(key: string): Promise<Buffer | undefined> {
    const redisKey = this.#valueKey(key);
    return this.#run(key, async () => (await this.#client.getBuffer(redisKey)) ?? undefined);
  }

  async write(key: string, data: string | Uint8Array, options: StorageWriteOptions = {}): Promise<void> {
    const valueKey = this.#valueKey(key);
    const value = typeof data === 'string' ? Buffer.from(data, 'utf8') : Buffer.from(data);
    const { fence, ttlMs } = options;
    const expiresAt = ttlMs === undefined ? undefined : Date.now() + ttlMs;
    if (fence === undefined) {
      await this.#run(key, () => {
        const transaction = this.#client.multi();
        if (ttlMs === undefined) transaction.set(valueKey, value).zrem(this.#expiringKey, key);
        else transaction.set(valueKey, value, 'PX', ttlMs).zadd(this.#expiringKey, expiresAt!, key);
        return transaction.del(this.#linkKey(key)).zadd(this.#indexKey, 0, key).publish(this.changesChannel, key).exec();
      });
      return;
    }
    if (!(fence instanceof RedisStorageLock) || fence.lost) throw lockLostError(fence.key, key, this.location);
    const keys = [this.#lockKey(fence.key), valueKey, this.#indexKey, this.changesChannel, this.#linkKey(key), this.#expiringKey];
    const written = await this.#run(key, () =>
      this.#client.eval(FENCED_SET, keys.length, ...keys, fence.value, value, key, ttlMs ?? '', expiresAt ?? ''),
    );
    if (written !== 1) throw lockLostError(fence.key, key, this.location);
  }

  async link(key: string, target: string, options: StorageWriteOptions = {}): Promise<void> {
    const fence = options.fence;
    if (fence !== undefined && (!(fence instanceof RedisStorageLock) || fence.lost)) throw lockLostError(fence.key, key, this.location);
    const keys = [fence === undefined ? this.#lockKey(key) : this.#lockKey(fence.key), this.#valueKey(target), this.#valueKey(key), this.#linkKey(key), this.#indexKey, this.changesChannel];
    const linked = await this.#run(key, () => this.#client.eval(LINK, keys.length, ...keys, fence?.value ?? '', target, key));
    if (linked === -1) throw linkTargetMissing(key, target, this.location);
    if (linked !== 1) throw lockLostError(fence!.key, key, this.location);
  }

  async readLink(key: string): Promise<string | undefined> {
    const linkKey = this.#linkKey(key);
    return this.#run(key, async () => (await this.#client.get(linkKey)) ?? undefined);
  }

  async delete(key: string): Promise<void> {
    const valueKey = this.#valueKey(key);
    await this.#run(key, () =>
      this.#client.multi().del(valueKey, this.#linkKey(key)).zrem(this.#indexKey, key).zrem(this.#expiringKey, key).publish(this.changesChannel, key).exec(),
    );
  }

  async list(prefix: string): Promise<string[]> {
    checkStoragePrefix(prefix);
    const [min, max] = prefix === '' ? ['-', '+'] : [`[${prefix}/`, `(${prefix}0`];
    const keys = (await this.#run(prefix === '' ? '(every key)' : prefix, () =>
      this.#client.eval(LIST, 2, this.#indexKey, this.#expiringKey, Date.now(), `${this.prefix}v:`, min, max),
    )) as string[];
    return keys.sort();
  }

  async lock(key: string, options: StorageLockOptions = {}): Promise<StorageLock> {
    const refreshMs = options.refreshMs ?? DEFAULT_REFRESH_MS;
    const timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
    const owner = options.owner ?? `${hostname()}:${process.pid}`;
    const lockKey = this.#lockKey(key);
    const startedAt = Date.now();
    for (;;) {
      options.signal?.throwIfAborted();
      const value = `${randomBytes(16).toString('hex')} ${owner}`;
      const takenAt = Date.now();
      const taken = await this.#run(key, () => this.#client.set(lockKey, value, 'PX', 2 * refreshMs, 'NX'));
      if (taken === 'OK') return new RedisStorageLock(this, key, value, refreshMs, takenAt);
      const holder = await this.#run(key, () => this.#client.get(lockKey));
      const ttl = await this.#run(key, () => this.#client.pttl(lockKey));
      const describe = holder === null ? 'nobody (just released)' : `${holder.slice(holder.indexOf(' ') + 1)} (lease expires in ${formatDuration(Math.max(0, ttl))})`;
      const waitedMs = Date.now() - startedAt;
      if (waitedMs >= timeoutMs) {
        throw new ProximationError(
          'ERR_LOCK_TIMEOUT',
          `Timed out after ${formatDuration(timeoutMs)} waiting for the lock ${key} in ${this.location}, held by ${describe}. ` +
            'Retry later, or stop the holder if it is stuck; a lock left by a crashed process frees itself when its lease expires.',
        );
      }
      options.onWait?.({ path: key, holder: describe, waitedMs, timeoutMs });
      await delay(Math.min(timeoutMs - waitedMs, 50 + Math.random() * 200), undefined, { signal: options.signal }).catch((err: unknown) => {
        options.signal?.throwIfAborted();
        throw err;
      });
    }
  }

  /** Runs a script on the lock key (refresh or release); 1 when the token was still ours. */
  async lockScript(script: 'refresh' | 'release', key: string, value: string, ttlMs: number): Promise<number> {
    const lockKey = this.#lockKey(key);
    return (await this.#run(key, () =>
      script === 'refresh' ? this.#client.eval(REFRESH, 1, lockKey, value, ttlMs) : this.#client.eval(RELEASE, 1, lockKey, value),
    )) as number;
  }

  async watch(listener: (key: string | undefined) => void): Promise<() => void> {
    this.#listeners.add(listener);
    this.#subscriber ??= this.#subscribe();
    await this.#subscriber;
    return () => this.#listeners.delete(listener);
  }

  /** A second connection (a subscribed one can run nothing else), resubscribed by ioredis after a reconnection. */
  async #subscribe(): Promise<Redis> {
    const subscriber = this.#client.duplicate({ enableOfflineQueue: true, lazyConnect: true });
    subscriber.on('error', () => undefined);
    subscriber.on('message', (_channel: string, key: string) => this.#notify(key));
    let subscribedOnce = false;
    subscriber.on('ready', () => {
      if (subscribedOnce) this.#notify(undefined);
      subscribedOnce = true;
    });
    await this.#run('(change notifications)', async () => {
      await subscriber.connect();
      await subscriber.subscribe(this.changesChannel);
    });
    return subscriber;
  }

  #notify(key: string | undefined): void {
    for (const listener of this.#listeners) listener(key);
  }

  async close(): Promise<void> {
    const subscriber = await this.#subscriber?.catch(() => undefined);
    subscriber?.disconnect();
    await this.#client.quit().catch(() => this.#client.disconnect());
  }

  get #indexKey(): string {
    return `${this.prefix}keys`;
  }

  get #expiringKey(): string {
    return `${this.prefix}expiring`;
  }

  #valueKey(key: string): string {
    return `${this.prefix}v:${checkStorageKey(key)}`;
  }

  #linkKey(key: string): string {
    return `${this.prefix}link:${checkStorageKey(key)}`;
  }

  #lockKey(key: string): string {
    return `${this.prefix}lock:${checkStorageKey(key)}`;
  }

  async #run<T>(key: string, command: () => Promise<T>): Promise<T> {
    try {
      return await command();
    } catch (err) {
      throw new ProximationError(
        'ERR_STORAGE_UNAVAILABLE',
        `Redis at ${this.location} failed on ${key}: ${errorMessage(err)}. Check that Redis is reachable; the client reconnects by itself.`,
        { cause: err },
      );
    }
  }
}

class RedisStorageLock extends RefreshedLease implements StorageLock {
  readonly key: string;
  readonly value: string;
  readonly #storage: RedisStorage;

  constructor(storage: RedisStorage, key: string, value: string, refreshMs: number, takenAt: number) {
    super(refreshMs, takenAt);
    this.#storage = storage;
    this.key = key;
    this.value = value;
  }

  // The new expiry counts from when Redis ran the script, which is no earlier than `now`.
  protected async renew(): Promise<boolean> {
    return (await this.#storage.lockScript('refresh', this.key, this.value, 2 * this.refreshMs)) === 1;
  }

  protected async remove(): Promise<void> {
    await this.#storage.lockScript('release', this.key, this.value, 0);
  }
}
