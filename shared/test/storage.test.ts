import { readFile, readdir, readlink, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isProximationError } from '../src/errors.js';
import { FileStorage } from '../src/storage/file-backend.js';
import { connectRedisStorage } from '../src/storage/redis-backend.js';
import type { RedisStorageOptions } from '../src/storage/redis-backend.js';
import { tempDir, waitUntil } from './helpers.js';
import { startRedisServer } from './redis-server.js';
import type { RedisServer } from './redis-server.js';
import { storageContract } from './storage-contract.js';

async function failure(promise: Promise<unknown>): Promise<{ code: string; message: string }> {
  try {
    await promise;
  } catch (err) {
    if (isProximationError(err)) return { code: err.code, message: err.message };
    throw err;
  }
  throw new Error('expected a rejection');
}

storageContract('file', async () => {
  const dir = await tempDir();
  return { open: async () => new FileStorage(dir) };
});

describe('file backend layout', () => {
  it('keeps each key at the path of the same name, with the mode asked for, and its locks as lock.ts lease files', async () => {
    const dir = await tempDir();
    const storage = new FileStorage(dir);
    await storage.write('proximation/routes.json', '{"a":1}\n');
    await storage.write('archive/example.com/privkey1.pem', 'key', { mode: 0o600 });
    expect(await readFile(join(dir, 'proximation/routes.json'), 'utf8')).toBe('{"a":1}\n');
    expect((await stat(join(dir, 'archive/example.com/privkey1.pem'))).mode & 0o777).toBe(0o600);
    const lock = await storage.lock('proximation/routes.json.lock', { owner: 'me' });
    expect(JSON.parse(await readFile(join(dir, 'proximation/routes.json.lock'), 'utf8'))).toMatchObject({ owner: 'me' });
    await lock.release();
    expect(await storage.list('')).toEqual(['archive/example.com/privkey1.pem', 'proximation/routes.json']);
  });

  it("makes a link certbot's relative symlink, and new directories with the mode asked for", async () => {
    const dir = await tempDir();
    const storage = new FileStorage(dir);
    await storage.write('archive/example.com/cert1.pem', 'c', { dirMode: 0o700 });
    await storage.link('live/example.com/cert.pem', 'archive/example.com/cert1.pem', { dirMode: 0o700 });
    expect(await readlink(join(dir, 'live/example.com/cert.pem'))).toBe('../../archive/example.com/cert1.pem');
    for (const sub of ['archive', 'archive/example.com', 'live', 'live/example.com']) expect((await stat(join(dir, sub))).mode & 0o777, sub).toBe(0o700);
    expect(await readdir(join(dir, 'live/example.com'))).toEqual(['cert.pem']);
  });
});

describe.each([
  { name: 'redis', password: undefined, tls: false },
  { name: 'redis with a password and TLS', password: 'test pass/word', tls: true },
])('$name backend', ({ password, tls }) => {
  let server: RedisServer;
  const options = (): RedisStorageOptions => ({ tls: server.ca === undefined ? undefined : { ca: server.ca } });
  beforeAll(async () => {
    server = await startRedisServer({ password, tls });
  });
  afterAll(async () => {
    await server?.stop({ final: true });
  });

  storageContract('redis', async () => {
    const keyPrefix = `t${randomBytes(4).toString('hex')}:`;
    return { open: () => connectRedisStorage(server.url, { ...options(), keyPrefix }) };
  });

  it('refuses a fenced write whose lock the server no longer holds for it, even when the holder has not noticed', async () => {
    const keyPrefix = `f${randomBytes(4).toString('hex')}:`;
    const storage = await connectRedisStorage(server.url, { ...options(), keyPrefix });
    const raw = new Redis(server.url, { tls: options().tls });
    try {
      const lock = await storage.lock('routes.lock', { refreshMs: 60_000 });
      await raw.set(`${keyPrefix}lock:routes.lock`, 'another holder');
      expect(lock.lost).toBe(false);
      expect((await failure(storage.write('routes', 'stale', { fence: lock }))).code).toBe('ERR_LOCK_LOST');
      expect(await storage.read('routes')).toBeUndefined();
      await lock.release();
      expect(await raw.get(`${keyPrefix}lock:routes.lock`)).toBe('another holder');
    } finally {
      raw.disconnect();
      await storage.close();
    }
  });

  it('fails at once while Redis is away, reconnects by itself, and tells watchers anything may have changed', async () => {
    const keyPrefix = `r${randomBytes(4).toString('hex')}:`;
    const storage = await connectRedisStorage(server.url, { ...options(), keyPrefix });
    try {
      let resubscribed: () => void = () => undefined;
      const back = new Promise<void>((resolve) => (resubscribed = resolve));
      await storage.watch((key) => {
        if (key === undefined) resubscribed();
      });
      await server.stop();
      expect((await failure(storage.write('routes', 'while away'))).code).toBe('ERR_STORAGE_UNAVAILABLE');
      await server.start();
      await back;
      // The watch connection may be back before the command connection: wait for the latter too.
      await waitUntil(() => storage.write('routes', 'after').then(() => true, () => false), 20_000, 'a write after the restart');
      expect((await storage.read('routes'))!.toString()).toBe('after');
    } finally {
      await storage.close();
    }
  });

  it('expires a key written with a TTL (gone from read and list, and from the index), unless rewritten without one', async () => {
    const keyPrefix = `x${randomBytes(4).toString('hex')}:`;
    const storage = await connectRedisStorage(server.url, { ...options(), keyPrefix });
    const raw = new Redis(server.url, { tls: options().tls });
    try {
      await storage.write('leases/short.json', 'a', { ttlMs: 300 });
      await storage.write('leases/kept.json', 'b', { ttlMs: 300 });
      await storage.write('leases/kept.json', 'b');
      expect(await storage.list('leases')).toEqual(['leases/kept.json', 'leases/short.json']);
      await waitUntil(async () => (await storage.read('leases/short.json')) === undefined, 10_000, 'the key to expire');
      expect(await storage.list('leases')).toEqual(['leases/kept.json']);
      expect([await raw.zcard(`${keyPrefix}keys`), await raw.zcard(`${keyPrefix}expiring`)]).toEqual([1, 0]);
      expect(await raw.pttl(`${keyPrefix}v:leases/kept.json`)).toBe(-1);
    } finally {
      raw.disconnect();
      await storage.close();
    }
  });

  if (password !== undefined) {
    it('names the URL without the password when the password is wrong', async () => {
      const wrong = server.url.replace(encodeURIComponent(password), 'wrong-secret');
      const { code, message } = await failure(connectRedisStorage(wrong, options()));
      expect(code).toBe('ERR_STORAGE_AUTH');
      expect(message).toContain(`127.0.0.1:${server.port}`);
      expect(message).not.toContain('wrong-secret');
    });
  }
});

describe('redis backend input', () => {
  it('refuses malformed URLs and key prefixes, naming them without a password', async () => {
    for (const url of ['redis//localhost', 'http://localhost:6379', 'redis://:secret@localhost:6379/x', 'redis://localhost:6379?db=1']) {
      const { code, message } = await failure(connectRedisStorage(url));
      expect(code, url).toBe('ERR_STORAGE_URL');
      expect(message).not.toContain('secret');
    }
    expect((await failure(connectRedisStorage('redis://127.0.0.1:1', { keyPrefix: 'my fleet' }))).code).toBe('ERR_STORAGE_PREFIX');
  });

  it('says which Redis it could not reach, without the password', async () => {
    const server = await startRedisServer();
    const port = server.port;
    await server.stop({ final: true });
    const { code, message } = await failure(connectRedisStorage(`redis://:secret@127.0.0.1:${port}`, { connectTimeoutMs: 2_000 }));
    expect(code).toBe('ERR_STORAGE_UNAVAILABLE');
    expect(message).toContain(`127.0.0.1:${port}`);
    expect(message).not.toContain('secret');
  });
});
