import { readdir, readFile, utimes, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { setImmediate } from 'node:timers/promises';
import { describe, expect, it } from 'vitest';
import { isProximationError } from '../src/errors.js';
import { writeFileAtomic } from '../src/file-storage.js';
import { acquireLock, withLock } from '../src/lock.js';
import { runFixture, tempDir, waitUntil } from './helpers.js';

interface LeaseFile {
  owner: string;
  token: string;
  acquiredAt: number;
  refreshedAt: number;
  refreshMs: number;
}

async function readLease(path: string): Promise<LeaseFile> {
  return JSON.parse(await readFile(path, 'utf8')) as LeaseFile;
}

function busyWait(ms: number): void {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    // block the event loop, as a long synchronous task would
  }
}

describe('acquireLock', () => {
  it('writes a lease file and removes it on release', async () => {
    const dir = await tempDir();
    const path = join(dir, 'nested', 'routes.json.lock');
    const before = Date.now();
    const lock = await acquireLock(path, { owner: 'me', refreshMs: 1_000 });
    expect(lock.path).toBe(path);
    expect(lock.lost).toBe(false);
    const lease = await readLease(path);
    expect(lease).toMatchObject({ owner: 'me', refreshMs: 1_000 });
    expect(lease.token).toMatch(/^[0-9a-f]{32}$/);
    expect(lease.acquiredAt).toBeGreaterThanOrEqual(before);
    expect(lease.refreshedAt).toBe(lease.acquiredAt);
    await lock.release();
    await lock.release();
    expect(await readdir(join(dir, 'nested'))).toEqual([]);
  });

  it('defaults the owner to hostname:pid', async () => {
    const dir = await tempDir();
    const lock = await acquireLock(join(dir, 'l'));
    expect((await readLease(join(dir, 'l'))).owner).toMatch(new RegExp(`:${process.pid}$`));
    await lock.release();
  });

  it('gives mutual exclusion between processes: no increment is lost, no two holders overlap', async () => {
    const dir = await tempDir();
    const lockPath = join(dir, 'counter.lock');
    const counterPath = join(dir, 'counter');
    const workers = Array.from({ length: 4 }, () => runFixture('lock-counter.mjs', [lockPath, counterPath, '6']));
    const results = await Promise.all(workers.map((w) => w.exited));
    for (const { code, stdout, stderr } of results) {
      expect(stderr).toBe('');
      expect(code).toBe(0);
      expect(JSON.parse(stdout)).toEqual({ overlaps: 0, lost: 0 });
    }
    expect(await readFile(counterPath, 'utf8')).toBe('24');
    expect(await readdir(dir)).toEqual(['counter']);
  });

  it('takes over the lease of a holder killed with SIGKILL once it is stale', async () => {
    const dir = await tempDir();
    const path = join(dir, 'l');
    const holder = runFixture('hold-lock.mjs', [path, '200', 'victim']);
    const { token } = (await holder.firstLine) as { token: string };
    holder.process.kill('SIGKILL');
    await holder.exited;
    expect((await readLease(path)).token).toBe(token);

    const started = Date.now();
    const lock = await acquireLock(path, { refreshMs: 200, timeoutMs: 10_000, owner: 'successor' });
    // Soon after the lease went stale (2 x 200 ms after the victim's last refresh), not at the timeout.
    expect(Date.now() - started).toBeLessThan(3_000);
    expect(await readLease(path)).toMatchObject({ owner: 'successor' });
    expect(await readdir(dir)).toEqual(['l']);
    await lock.release();
  });

  it('keeps a live holder\'s lease fresh: a waiter times out with ERR_LOCK_TIMEOUT naming path and owner', async () => {
    const dir = await tempDir();
    const path = join(dir, 'l');
    const holder = runFixture('hold-lock.mjs', [path, '500', 'busy-holder']);
    const { token } = (await holder.firstLine) as { token: string };
    const firstRefresh = (await readLease(path)).refreshedAt;

    const started = Date.now();
    const error: unknown = await acquireLock(path, { refreshMs: 500, timeoutMs: 1_200 }).catch((err: unknown) => err);
    expect(Date.now() - started).toBeGreaterThanOrEqual(1_200); // > 2 refresh periods: stale unless refreshed
    expect(isProximationError(error, 'ERR_LOCK_TIMEOUT')).toBe(true);
    expect((error as Error).message).toContain(`waiting for the lock ${path}, held by busy-holder`);
    const lease = await readLease(path);
    expect(lease.token).toBe(token);
    expect(lease.refreshedAt).toBeGreaterThan(firstRefresh);
  });

  it('never shows readers an empty or foreign lock file while the holder refreshes', async () => {
    const dir = await tempDir();
    const path = join(dir, 'l');
    const holder = runFixture('hold-lock.mjs', [path, '150', 'refresher']);
    const { token } = (await holder.firstLine) as { token: string };
    const seen = new Set<number>();
    let reads = 0;
    // Until the holder has refreshed 4 times (about 600 ms), reading as fast as possible meanwhile.
    await waitUntil(
      async () => {
        for (let i = 0; i < 20; i++, reads++) {
          const lease = JSON.parse(await readFile(path, 'utf8')) as LeaseFile; // throws on empty or missing
          expect(lease.token).toBe(token);
          seen.add(lease.refreshedAt);
          await setImmediate();
        }
        return seen.size > 4;
      },
      10_000,
      'four refreshes',
    );
    expect(reads).toBeGreaterThan(seen.size * 10);
  });

  it('takes over an empty or garbled lock file only when its mtime is older than 2 refresh periods', async () => {
    const dir = await tempDir();
    const path = join(dir, 'l');
    await writeFile(path, '');
    await expect(acquireLock(path, { refreshMs: 1_000, timeoutMs: 300 })).rejects.toMatchObject({
      code: 'ERR_LOCK_TIMEOUT',
      message: expect.stringContaining('held by an unknown owner (the lock file is empty or garbled'),
    });
    await writeFile(path, '{"owner": "half-writ');
    const old = new Date(Date.now() - 10_000);
    await utimes(path, old, old);
    const lock = await acquireLock(path, { refreshMs: 1_000, timeoutMs: 300, owner: 'new' });
    expect((await readLease(path)).owner).toBe('new');
    await lock.release();
  });

  it('lets exactly one of several concurrent waiters take over a stale lease', async () => {
    const dir = await tempDir();
    const path = join(dir, 'l');
    const staleAt = Date.now() - 60_000;
    await writeFile(path, JSON.stringify({ owner: 'dead', token: 'old', acquiredAt: staleAt, refreshedAt: staleAt, refreshMs: 1_000 }));
    const attempts = await Promise.allSettled(
      Array.from({ length: 6 }, (_, i) => acquireLock(path, { refreshMs: 5_000, timeoutMs: 500, owner: `waiter-${i}` })),
    );
    const winners = attempts.flatMap((a) => (a.status === 'fulfilled' ? [a.value] : []));
    expect(winners).toHaveLength(1);
    for (const attempt of attempts) {
      if (attempt.status === 'rejected') expect(attempt.reason).toMatchObject({ code: 'ERR_LOCK_TIMEOUT' });
    }
    const owner = (await readLease(path)).owner;
    expect(owner).toMatch(/^waiter-\d$/);
    await winners[0]!.release();
    expect(await readdir(dir)).toEqual([]);
  });

  it('marks the lock lost when another token replaces it, and then leaves that file alone on release', async () => {
    const dir = await tempDir();
    const path = join(dir, 'l');
    const lock = await acquireLock(path, { refreshMs: 50 });
    const intruder = { owner: 'intruder', token: 'theirs', acquiredAt: Date.now(), refreshedAt: Date.now(), refreshMs: 60_000 };
    await writeFileAtomic(path, JSON.stringify(intruder));
    await waitUntil(() => lock.lost, 2_000, 'lock.lost');
    // A refresh that skipped the token check would overwrite the intruder within one period.
    await new Promise((resolve) => setTimeout(resolve, 200));
    expect(await readLease(path)).toEqual(intruder);
    await lock.release();
    expect(await readLease(path)).toEqual(intruder);
  });

  it('counts the lease as lost once the holder stalled past 2 refresh periods, and does not delete it', async () => {
    const dir = await tempDir();
    const path = join(dir, 'l');
    const lock = await acquireLock(path, { refreshMs: 50 });
    busyWait(150);
    expect(lock.lost).toBe(true);
    await lock.release();
    expect(await readdir(dir)).toEqual(['l']);
  });

  it('stops waiting when the signal aborts, with the abort reason', async () => {
    const dir = await tempDir();
    const path = join(dir, 'l');
    const held = await acquireLock(path);
    const controller = new AbortController();
    const waiting = acquireLock(path, { signal: controller.signal });
    setTimeout(() => controller.abort(new Error('shutting down')), 100);
    await expect(waiting).rejects.toThrow('shutting down');
    await held.release();
  });

  it('rejects nonsensical options', async () => {
    const dir = await tempDir();
    await expect(acquireLock(join(dir, 'l'), { refreshMs: 0 })).rejects.toMatchObject({ code: 'ERR_INVALID_ARGUMENT' });
    await expect(acquireLock(join(dir, 'l'), { timeoutMs: -1 })).rejects.toMatchObject({ code: 'ERR_INVALID_ARGUMENT' });
  });
});

describe('withLock', () => {
  it('returns the result and releases the lock', async () => {
    const dir = await tempDir();
    const path = join(dir, 'l');
    expect(await withLock(path, async (lock) => (await readLease(lock.path)).owner, { owner: 'w' })).toBe('w');
    expect(await readdir(dir)).toEqual([]);
  });

  it('releases the lock when the function throws, and rethrows', async () => {
    const dir = await tempDir();
    const path = join(dir, 'l');
    await expect(
      withLock(path, async () => {
        throw new Error('boom');
      }),
    ).rejects.toThrow('boom');
    expect(await readdir(dir)).toEqual([]);
  });
});
