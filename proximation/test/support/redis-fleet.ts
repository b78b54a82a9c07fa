/**
 * Test support for fleets on a real redis-server (shared/test/redis-server.ts): a fleet of its own
 * (a fresh key prefix on the server), the environment that names it, a handle on its storage, and
 * `proximation serve` processes on it whose HTTPS clients trust the fleet's local CA (on Redis its root
 * is in Redis, not in the letsencrypt directory). Everything is closed by `resources` after the test.
 */
import { randomBytes } from 'node:crypto';
import { connectRedisStorage, type RedisStorage } from '@proximation/shared';
import type { RedisServer } from '../../../shared/test/redis-server.js';
import { tempDir, type managed } from './fixtures.js';
import { startServeProcess, type ServeProcess } from './process.js';

export interface RedisFleet {
  /** PROXIMATION_STORAGE and PROXIMATION_STORAGE_PREFIX of this fleet. */
  readonly env: Record<string, string>;
  readonly storage: RedisStorage;
  /** A `proximation serve` on the fleet, with `env` added; ready once /healthz answers 200. */
  serve(env?: Record<string, string>): Promise<ServeProcess>;
}

export async function redisFleet(resources: ReturnType<typeof managed>, redis: RedisServer): Promise<RedisFleet> {
  const prefix = `fleet${randomBytes(4).toString('hex')}:`;
  const storage = await connectRedisStorage(redis.url, { keyPrefix: prefix });
  resources.defer(() => storage.close());
  const fleetEnv = { PROXIMATION_STORAGE: redis.url, PROXIMATION_STORAGE_PREFIX: prefix };
  return {
    env: fleetEnv,
    storage,
    async serve(env = {}) {
      const dir = await tempDir();
      resources.defer(() => dir.close());
      const proxy = await startServeProcess(dir.path, { ...fleetEnv, ...env }, 30_000);
      resources.defer(() => proxy.kill());
      const ca = (await storage.read('proximation/local-ca/root.pem'))?.toString() ?? '';
      return { ...proxy, target: { ...proxy.target, ca } as ServeProcess['target'] };
    },
  };
}
