import fs from 'node:fs/promises';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { FileStorage } from '@proximation/shared';
import { BACKOFF_STEPS_MS, BackoffStore, isAttemptAllowed, nextAttemptTime } from '../../src/certs/backoff.js';
import { OrderLimiter } from '../../src/certs/order-limiter.js';
import { tempDir } from '../support/fixtures.js';

const now = new Date('2026-01-01T00:00:00Z');
const after = (failures: number, random = 0, retryAfter?: Date): number => nextAttemptTime(failures, now, retryAfter, random).getTime() - now.getTime();

describe('nextAttemptTime', () => {
  it('waits 1 min, 10 min, 100 min, then a day after each further failure', () => {
    expect([1, 2, 3, 4, 5, 50].map((n) => after(n))).toEqual([60_000, 600_000, 6_000_000, 86_400_000, 86_400_000, 86_400_000]);
    expect(BACKOFF_STEPS_MS).toHaveLength(4);
  });

  it('adds at most 10% of random extra wait', () => {
    expect(after(2, 0.999)).toBeGreaterThan(600_000);
    expect(after(2, 0.999)).toBeLessThan(660_000);
  });

  it("honours the CA's Retry-After when it is later, not when it is earlier", () => {
    expect(after(1, 0, new Date(now.getTime() + 3_600_000))).toBe(3_600_000);
    expect(after(3, 0, new Date(now.getTime() + 1_000))).toBe(6_000_000);
  });

  it('allows an attempt once the time has come, or when nothing failed', () => {
    const state = { failures: 1, nextAttemptAt: new Date(now.getTime() + 60_000), lastError: 'x', lastFailureAt: now };
    expect(isAttemptAllowed(undefined, now)).toBe(true);
    expect(isAttemptAllowed(state, now)).toBe(false);
    expect(isAttemptAllowed(state, new Date(now.getTime() + 60_000))).toBe(true);
  });
});

describe('BackoffStore', () => {
  let dir: { path: string; close(): Promise<void> };
  afterEach(async () => dir?.close());

  it('counts failures in a file per name, and forgets them on clear', async () => {
    dir = await tempDir();
    const storage = new FileStorage(dir.path);
    const store = new BackoffStore(storage);
    expect(await store.read('a.test')).toBeUndefined();
    await store.record('a.test', 'first', now);
    const second = await store.record('a.test', 'rate limited', now, new Date(now.getTime() + 7_200_000));
    expect(second).toMatchObject({ failures: 2, lastError: 'rate limited', nextAttemptAt: new Date(now.getTime() + 7_200_000) });
    expect(await new BackoffStore(storage).read('a.test')).toEqual(second);
    expect(await fs.readdir(path.join(dir.path, 'proximation', 'state'))).toEqual(['a.test.json']);
    await store.clear('a.test');
    expect(await store.read('a.test')).toBeUndefined();
  });

  it('treats a damaged file as no state, and refuses names that are not hostnames', async () => {
    dir = await tempDir();
    const store = new BackoffStore(new FileStorage(dir.path));
    await fs.mkdir(path.join(dir.path, 'proximation', 'state'), { recursive: true });
    await fs.writeFile(path.join(dir.path, 'proximation', 'state', 'b.test.json'), '{"failures": "many"');
    expect(await store.read('b.test')).toBeUndefined();
    await expect(store.read('../evil')).rejects.toThrow();
  });
});

describe('OrderLimiter', () => {
  it('runs at most the limit at once, and all of them in the end', async () => {
    const limiter = new OrderLimiter(2);
    let running = 0;
    let peak = 0;
    const releases: (() => void)[] = [];
    const tasks = Array.from({ length: 5 }, (_, i) =>
      limiter.run(async () => {
        running++;
        peak = Math.max(peak, running);
        await new Promise<void>((resolve) => releases.push(resolve));
        running--;
        return i;
      }),
    );
    for (let done = 0; done < 5; done++) {
      await new Promise((resolve) => setImmediate(resolve));
      expect(running).toBe(Math.min(2, 5 - done));
      releases.shift()!();
    }
    expect(await Promise.all(tasks)).toEqual([0, 1, 2, 3, 4]);
    expect(peak).toBe(2);
  });

  it('frees the slot when a task throws', async () => {
    const limiter = new OrderLimiter(1);
    await expect(limiter.run(() => Promise.reject(new Error('no')))).rejects.toThrow('no');
    expect(await limiter.run(() => Promise.resolve('yes'))).toBe('yes');
  });
});
