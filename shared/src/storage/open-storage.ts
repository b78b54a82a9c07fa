/**
 * One setting names the storage (`proximation storage copy --from/--to`): a
 * `redis://` or `rediss://` URL opens the Redis backend; anything with a scheme (`x:`), or starting
 * `redis//` (a mistyped URL, not a directory to create), must be one, else ERR_STORAGE_URL; the rest is
 * a directory for the file backend. Redis's own failures are connectRedisStorage's.
 */
import { FileStorage } from './file-backend.js';
import { connectRedisStorage, parseRedisUrl } from './redis-backend.js';
import type { RedisStorageOptions } from './redis-backend.js';
import type { Storage } from './storage.js';

export async function openStorage(setting: string, options: RedisStorageOptions = {}): Promise<Storage> {
  return checkStorageSetting(setting, options.what) === 'file' ? new FileStorage(setting) : connectRedisStorage(setting, options);
}

/** Which backend `setting` names; throws ERR_STORAGE_URL for a URL that is not a Redis one. */
export function checkStorageSetting(setting: string, what?: string): 'file' | 'redis' {
  if (!/^[a-z][a-z0-9+.-]*:/i.test(setting) && !/^rediss?\/\//i.test(setting)) return 'file';
  parseRedisUrl(setting, what);
  return 'redis';
}
