import { readlink, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isProximationError } from '../src/errors.js';
import { addSite, emptyRoutingTable, serializeRoutingTable } from '../src/routing-table.js';
import { updateRoutingTable } from '../src/routes-file.js';
import { ROUTES_KEY, copyStorage } from '../src/storage/copy.js';
import { FileStorage } from '../src/storage/file-backend.js';
import { connectRedisStorage } from '../src/storage/redis-backend.js';
import { tempDir } from './helpers.js';
import { startRedisServer } from './redis-server.js';
import type { RedisServer } from './redis-server.js';

describe('copyStorage', () => {
  let server: RedisServer;
  beforeAll(async () => {
    server = await startRedisServer();
  });
  afterAll(async () => {
    await server?.stop({ final: true });
  });

  it('copies a directory to Redis and back, byte for byte, idempotently, with private keys 0600, and no locks', async () => {
    const dir = await tempDir();
    const files = new FileStorage(dir);
    await updateRoutingTable(files, ROUTES_KEY, (t) => addSite(t, { name: 'dev', hosts: ['dev.example.com'] }));
    await files.write('archive/dev.example.com/privkey1.pem', 'KEY', { mode: 0o600 });
    await files.write('archive/dev.example.com/cert1.pem', Buffer.from([0, 1, 2, 255]));
    await files.write('proximation/locks/dev.example.com.lock', '{}');
    await files.link('live/dev.example.com/cert.pem', 'archive/dev.example.com/cert1.pem');
    const redis = await connectRedisStorage(server.url, { keyPrefix: 'copy1:' });
    try {
      const first = await copyStorage(files, redis);
      // The table was written by updateRoutingTable, which keeps its last good copy beside it: state too.
      expect(first.copied).toEqual([
        'archive/dev.example.com/cert1.pem',
        'archive/dev.example.com/privkey1.pem',
        ROUTES_KEY,
        `${ROUTES_KEY}.last-good`,
        'live/dev.example.com/cert.pem',
      ]);
      expect(await redis.readLink('live/dev.example.com/cert.pem')).toBe('archive/dev.example.com/cert1.pem');
      expect((await copyStorage(files, redis)).copied).toEqual([]);
      const back = new FileStorage(await tempDir());
      await copyStorage(redis, back);
      for (const key of first.copied) expect((await back.read(key))!.equals((await files.read(key))!)).toBe(true);
      expect((await stat(join(back.location, 'archive/dev.example.com/privkey1.pem'))).mode & 0o777).toBe(0o600);
      // certbot's live/ link comes back as the relative symlink, in a 0700 directory.
      expect(await readlink(join(back.location, 'live/dev.example.com/cert.pem'))).toBe('../../archive/dev.example.com/cert1.pem');
      expect((await stat(join(back.location, 'live'))).mode & 0o777).toBe(0o700);
      expect((await copyStorage(redis, back, { prefixes: ['live', 'archive'] })).copied).toEqual([]);
      expect((await copyStorage(back, redis, { prefixes: ['live/dev.example.com', 'archive'] })).unchanged).toHaveLength(3);
      expect(await back.read('proximation/locks/dev.example.com.lock')).toBeUndefined();
    } finally {
      await redis.close();
    }
  });

  it('refuses to overwrite a newer routing table generation, writing nothing', async () => {
    const older = new FileStorage(await tempDir());
    await older.write(ROUTES_KEY, serializeRoutingTable({ ...emptyRoutingTable(), generation: 3 }));
    await older.write('renewal/x.conf', 'x');
    const newer = await connectRedisStorage(server.url, { keyPrefix: 'copy2:' });
    try {
      await newer.write(ROUTES_KEY, serializeRoutingTable({ ...emptyRoutingTable(), generation: 4 }));
      const err = await copyStorage(older, newer).catch((e: unknown) => e);
      expect(isProximationError(err, 'ERR_STORAGE_COPY_NEWER')).toBe(true);
      expect(await newer.read('renewal/x.conf')).toBeUndefined();
    } finally {
      await newer.close();
    }
  });
});
