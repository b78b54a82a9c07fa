/**
 * One setting names the storage (PROXIMATION_STORAGE, `--storage`, `storage copy --from/--to`): a
 * `redis://` or `rediss://` URL opens the Redis backend; anything with a scheme (`x:`), or starting
 * `redis//` (a mistyped URL, not a directory to create), must be one, else ERR_STORAGE_URL; the rest is
 * a directory for the file backend. Redis's own failures are connectRedisStorage's.
 */
import { FileStorage } from './file-backend.js';
import { connectRedisStorage, parseRedisUrl } from './redis-backend.js';
import type { RedisStorageOptions } from './redis-backend.js';
import type { Storage } from './storage.js';

export async function openStorage(setting: string, options: RedisStorageOptions = {}): Promise<Storage> {
  if (!/^[a-z][a-z0-9+.-]*:/i.test(setting) && !/^rediss?\/\//i.test(setting)) return new FileStorage(setting);
  parseRedisUrl(setting, options.what);
  return connectRedisStorage(setting, options);
}
