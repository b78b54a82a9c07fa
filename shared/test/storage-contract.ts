/**
 * The contract of storage.ts as tests, run on every backend (storage.test.ts). `open` returns a new
 * handle on the same, initially empty, store each time it is called within one test (two handles stand
 * for two processes); the suite closes what it opens.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { isProximationError } from '../src/errors.js';
import { withStorageLock } from '../src/storage/storage.js';
import type { Storage } from '../src/storage/storage.js';

function busyWait(ms: number): void {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    // block the event loop, as a stalled process would
  }
}

async function rejectionCode(promise: Promise<unknown>): Promise<string | undefined> {
  try {
    await promise;
  } catch (err) {
    return isProximationError(err) ? err.code : `not a ProximationError: ${String(err)}`;
  }
  return undefined;
}

export function storageContract(name: string, newStore: () => Promise<{ open: () => Promise<Storage> }>): void {
  describe(`storage contract: ${name}`, () => {
    const opened: Storage[] = [];
    afterEach(async () => {
      await Promise.all(opened.splice(0).map((storage) => storage.close()));
    });
    async function handles(count: number): Promise<Storage[]> {
      const store = await newStore();
      const result: Storage[] = [];
      for (let i = 0; i < count; i++) result.push(await store.open());
      opened.push(...result);
      return result;
    }

    it('reads back the exact bytes written, undefined for a missing key, the last write after an overwrite', async () => {
      const [a, b] = await handles(2);
      expect(await a!.read('live/example.com/cert.pem')).toBeUndefined();
      const bytes = Uint8Array.from({ length: 256 }, (_, i) => i);
      await a!.write('live/example.com/cert.pem', bytes);
      expect(Buffer.compare((await b!.read('live/example.com/cert.pem'))!, Buffer.from(bytes))).toBe(0);
      await b!.write('live/example.com/cert.pem', 'second');
      expect((await a!.read('live/example.com/cert.pem'))!.toString()).toBe('second');
    });

    it('deletes a key, and deleting a missing key is no error', async () => {
      const [a] = await handles(1);
      await a!.write('proximation/challenges/token', 'x');
      await a!.delete('proximation/challenges/token');
      expect(await a!.read('proximation/challenges/token')).toBeUndefined();
      await a!.delete('proximation/challenges/token');
      expect(await a!.list('proximation/challenges')).toEqual([]);
    });

    it('lists every key under a prefix at any depth, sorted, and nothing of a sibling with a longer name', async () => {
      const [a] = await handles(1);
      for (const key of ['live/b.example/cert.pem', 'live/a.example/privkey.pem', 'live/a.example/cert.pem', 'live2/x', 'livex', 'renewal/a.example.conf']) {
        await a!.write(key, key);
      }
      expect(await a!.list('live')).toEqual(['live/a.example/cert.pem', 'live/a.example/privkey.pem', 'live/b.example/cert.pem']);
      expect(await a!.list('live/a.example')).toEqual(['live/a.example/cert.pem', 'live/a.example/privkey.pem']);
      expect(await a!.list('accounts')).toEqual([]);
      expect(await a!.list('')).toEqual([...(await a!.list('live')), 'live2/x', 'livex', 'renewal/a.example.conf'].sort());
    });

    it('links a key to an existing one: read follows it, readLink names the target, a write replaces the link', async () => {
      const [a, b] = await handles(2);
      await a!.write('archive/example.com/cert1.pem', 'one');
      await a!.write('archive/example.com/cert2.pem', 'two');
      await a!.link('live/example.com/cert.pem', 'archive/example.com/cert1.pem');
      expect((await b!.read('live/example.com/cert.pem'))!.toString()).toBe('one');
      expect(await b!.readLink('live/example.com/cert.pem')).toBe('archive/example.com/cert1.pem');
      expect(await b!.readLink('archive/example.com/cert1.pem')).toBeUndefined();
      expect(await b!.readLink('live/example.com/missing.pem')).toBeUndefined();
      await a!.link('live/example.com/cert.pem', 'archive/example.com/cert2.pem');
      expect((await b!.read('live/example.com/cert.pem'))!.toString()).toBe('two');
      expect(await b!.list('live')).toEqual(['live/example.com/cert.pem']);
      expect(await rejectionCode(a!.link('live/example.com/chain.pem', 'archive/example.com/chain9.pem'))).toBe('ERR_STORAGE_LINK');
      await a!.write('live/example.com/cert.pem', 'plain');
      expect(await b!.readLink('live/example.com/cert.pem')).toBeUndefined();
      expect((await b!.read('archive/example.com/cert2.pem'))!.toString()).toBe('two');
      await a!.link('live/example.com/cert.pem', 'archive/example.com/cert1.pem');
      await a!.delete('live/example.com/cert.pem');
      expect([await b!.read('live/example.com/cert.pem'), await b!.readLink('live/example.com/cert.pem')]).toEqual([undefined, undefined]);
      expect((await b!.read('archive/example.com/cert1.pem'))!.toString()).toBe('one');
    });

    it('keeps a key written with a TTL readable and listed within it, fenced or not, and a rewrite replaces it', async () => {
      const [a, b] = await handles(2);
      await a!.write('proximation/instances/i1.json', 'beat 1', { ttlMs: 60_000 });
      await withStorageLock(a!, 'proximation/instances.lock', (lock) => a!.write('proximation/instances/i2.json', 'beat 2', { ttlMs: 60_000, fence: lock }));
      expect(await b!.list('proximation/instances')).toEqual(['proximation/instances/i1.json', 'proximation/instances/i2.json']);
      await b!.write('proximation/instances/i1.json', 'permanent');
      expect((await a!.read('proximation/instances/i1.json'))!.toString()).toBe('permanent');
      expect((await a!.read('proximation/instances/i2.json'))!.toString()).toBe('beat 2');
    });

    it('refuses keys that are not relative paths of plain segments', async () => {
      const [a] = await handles(1);
      for (const key of ['', '/etc/passwd', 'a/../b', 'a//b', './a', 'a\\b', 'a\0b', 'a/']) {
        expect(await rejectionCode(a!.write(key, 'x')), key).toBe('ERR_STORAGE_KEY');
        expect(await rejectionCode(a!.read(key)), key).toBe('ERR_STORAGE_KEY');
      }
      expect(await rejectionCode(a!.list('a/..'))).toBe('ERR_STORAGE_KEY');
    });

    it('gives a lock to one holder at a time; the next gets it once released', async () => {
      const [a, b] = await handles(2);
      const lock = await a!.lock('proximation/locks/example.com.lock', { owner: 'holder-a', refreshMs: 1_000 });
      expect(lock.lost).toBe(false);
      const waits: string[] = [];
      const blocked = b!.lock('proximation/locks/example.com.lock', { timeoutMs: 300, onWait: (wait) => waits.push(wait.holder) });
      expect(await rejectionCode(blocked)).toBe('ERR_LOCK_TIMEOUT');
      expect(waits.length).toBeGreaterThan(0);
      expect(waits[0]).toContain('holder-a');
      await lock.release();
      await lock.release(); // a second release does nothing
      const next = await b!.lock('proximation/locks/example.com.lock', { timeoutMs: 0 });
      await next.release();
    });

    it('serialises read-modify-write between handles: no increment is lost', async () => {
      const [a, b] = await handles(2);
      const increment = async (storage: Storage): Promise<void> => {
        await withStorageLock(storage, 'counter.lock', async (lock) => {
          const value = Number((await storage.read('counter'))?.toString() ?? '0');
          await storage.write('counter', String(value + 1), { fence: lock });
        }, { timeoutMs: 20_000, refreshMs: 1_000 });
      };
      await Promise.all(Array.from({ length: 16 }, (_, i) => increment(i % 2 === 0 ? a! : b!)));
      expect((await a!.read('counter'))!.toString()).toBe('16');
    });

    it('keeps a lease its holder refreshes, past two refresh periods', async () => {
      const [a, b] = await handles(2);
      // Periods long enough for a refresh (an fsynced write on files) on a loaded machine: 400 ms lost
      // the lease once at load 10, where one refresh took longer than a period.
      const lock = await a!.lock('kept.lock', { refreshMs: 1_000 });
      await new Promise((resolve) => setTimeout(resolve, 2_500));
      expect(lock.lost).toBe(false);
      expect(await rejectionCode(b!.lock('kept.lock', { timeoutMs: 0, refreshMs: 1_000 }))).toBe('ERR_LOCK_TIMEOUT');
      await lock.release();
    });

    it('tells a watcher of every write and delete by another handle, when the backend notifies', async () => {
      const [a, b] = await handles(2);
      const seen: Array<string | undefined> = [];
      let arrived: () => void = () => undefined;
      const stop = await b!.watch((key) => {
        seen.push(key);
        if (seen.length === 2) arrived();
      });
      const both = new Promise<void>((resolve) => (arrived = resolve));
      await a!.write('proximation/routes.json', '{}');
      await a!.delete('proximation/routes.json');
      if (b!.notifies) {
        await both;
        expect(seen).toEqual(['proximation/routes.json', 'proximation/routes.json']);
      } else {
        expect(seen).toEqual([]);
      }
      stop();
    });

    it('a holder that stalls past its lease loses it: another takes it, and the stale fenced write is refused', async () => {
      const [a, b] = await handles(2);
      const stale = await a!.lock('stall.lock', { refreshMs: 100 });
      busyWait(450);
      expect(stale.lost).toBe(true);
      const fresh = await b!.lock('stall.lock', { refreshMs: 1_000, timeoutMs: 10_000 });
      await b!.write('guarded', 'new holder', { fence: fresh });
      expect(await rejectionCode(a!.write('guarded', 'stale holder', { fence: stale }))).toBe('ERR_LOCK_LOST');
      expect(await rejectionCode(a!.link('guarded-link', 'guarded', { fence: stale }))).toBe('ERR_LOCK_LOST');
      await b!.link('guarded-link', 'guarded', { fence: fresh });
      expect(await a!.readLink('guarded-link')).toBe('guarded');
      expect((await a!.read('guarded'))!.toString()).toBe('new holder');
      await stale.release(); // must not remove the new holder's lock
      expect(await rejectionCode(a!.lock('stall.lock', { timeoutMs: 0 }))).toBe('ERR_LOCK_TIMEOUT');
      await fresh.release();
    });
  });
}
