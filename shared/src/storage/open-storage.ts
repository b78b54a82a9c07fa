/**
 * One setting names the storage (`PROXIMATION_STORAGE` / `--storage` of every command that reaches the
 * shared state, `proximation storage copy --from/--to`): a `redis://` or `rediss://` URL opens the Redis
 * backend; anything with a scheme (`x:`), or starting `redis//` (a mistyped URL, not a directory to
 * create), must be one, else ERR_STORAGE_URL; the rest is a directory for the file backend.
 *
 * `parseStorageSetting` is the edge check (no connection): the backend, the value (a directory made
 * absolute, or the URL as given), and the Redis key prefix (`PROXIMATION_STORAGE_PREFIX`), checked
 * (ERR_STORAGE_PREFIX: spaces or other characters, or a prefix given for a directory, where it means
 * nothing). `openStorageSetting` opens it: Redis's own failures at start are connectRedisStorage's
 * (ERR_STORAGE_AUTH, ERR_STORAGE_UNAVAILABLE, each naming the URL without its password).
 */
import { resolve } from 'node:path';
import { ProximationError } from '../errors.js';
import { FileStorage } from './file-backend.js';
import { checkRedisKeyPrefix, connectRedisStorage, parseRedisUrl, redactRedisUrl } from './redis-backend.js';
import type { RedisStorageOptions } from './redis-backend.js';
import type { Storage } from './storage.js';

/** A checked storage setting. */
export interface StorageSetting {
  readonly backend: 'file' | 'redis';
  /** The directory (absolute) or the Redis URL (with its password: never log it; `location` is for messages). */
  readonly value: string;
  /** The directory, or the Redis URL without its password. */
  readonly location: string;
  /** Redis only; undefined: the backend's default (`proximation:`). */
  readonly keyPrefix: string | undefined;
  /** Where the value came from (`PROXIMATION_STORAGE`, `--storage`...), for messages. */
  readonly what: string;
}

export async function openStorage(setting: string, options: RedisStorageOptions = {}): Promise<Storage> {
  return checkStorageSetting(setting, options.what) === 'file' ? new FileStorage(setting) : connectRedisStorage(setting, options);
}

/** Which backend `setting` names; throws ERR_STORAGE_URL for a URL that is not a Redis one. */
export function checkStorageSetting(setting: string, what?: string): 'file' | 'redis' {
  if (!/^[a-z][a-z0-9+.-]*:/i.test(setting) && !/^rediss?\/\//i.test(setting)) return 'file';
  parseRedisUrl(setting, what);
  return 'redis';
}

/**
 * Checks `value` (from `what`) and the key prefix (from `prefixWhat`) together; a directory is
 * resolved against the working directory.
 */
export function parseStorageSetting(value: string, what: string, keyPrefix?: string, prefixWhat = 'PROXIMATION_STORAGE_PREFIX'): StorageSetting {
  if (checkStorageSetting(value, what) === 'file') {
    if (keyPrefix !== undefined) {
      throw new ProximationError(
        'ERR_STORAGE_PREFIX',
        `${prefixWhat}=${JSON.stringify(keyPrefix)} is a Redis key prefix, but ${what} names a directory (${value}); remove it, or set ${what} to a redis:// URL.`,
      );
    }
    const dir = resolve(value);
    return { backend: 'file', value: dir, location: dir, keyPrefix: undefined, what };
  }
  return {
    backend: 'redis',
    value,
    location: redactRedisUrl(parseRedisUrl(value, what)),
    keyPrefix: keyPrefix === undefined ? undefined : checkRedisKeyPrefix(keyPrefix, prefixWhat),
    what,
  };
}

/** Opens the storage a setting names (Redis: connected and answering, or it throws). */
export async function openStorageSetting(setting: StorageSetting, options: Omit<RedisStorageOptions, 'what' | 'keyPrefix'> = {}): Promise<Storage> {
  if (setting.backend === 'file') return new FileStorage(setting.value);
  return connectRedisStorage(setting.value, { ...options, what: setting.what, ...(setting.keyPrefix === undefined ? {} : { keyPrefix: setting.keyPrefix }) });
}
