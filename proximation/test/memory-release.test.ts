import v8 from 'node:v8';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { fullCollection, startMemoryRelease, type MemoryReleaseOptions } from '../src/memory-release.js';

type Release = Parameters<MemoryReleaseOptions['onRelease']>[0];

const PERIOD_MS = 100;
const GROWTH_BYTES = 8 * 1024 * 1024;

let stop: (() => void) | undefined;
afterEach(() => stop?.());

// Each test starts from a collected heap: the previous tests' garbage, freed by V8 during a later burst,
// would otherwise hide that burst's growth.
beforeEach(() => fullCollection()());

/** Starts the release with a short period and returns every release as it happens. */
function watch(): { releases: Release[]; next(): Promise<Release> } {
  const releases: Release[] = [];
  let waiting: ((r: Release) => void) | undefined;
  stop = startMemoryRelease({
    periodMs: PERIOD_MS,
    idleUtilization: 0.2,
    growthBytes: GROWTH_BYTES,
    onRelease: (r) => {
      releases.push(r);
      waiting?.(r);
    },
  });
  return { releases, next: () => new Promise((resolve) => (waiting = resolve)) };
}

/**
 * Grows the heap by about 64 MiB of objects and returns them. Callers hold them until the release they
 * wait for: garbage could be freed by one of V8's own collections first, and the heap would not have grown.
 */
function burst(): { n: number; s: string }[] {
  const kept: { n: number; s: string }[] = [];
  for (let i = 0; i < 600_000; i++) kept.push({ n: i, s: `payload ${i}` });
  return kept;
}

/** Keeps the event loop busy (no idle period) for `ms`, yielding between slices so timers still run. */
async function busyFor(ms: number): Promise<void> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    const slice = Date.now() + 20;
    while (Date.now() < slice && Date.now() < end);
    await new Promise((resolve) => setImmediate(resolve));
  }
}

/** Waits `periods` of the release's periods (a bounded wait for something that must not happen). */
function periods(count: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, count * PERIOD_MS));
}

describe('memory release after a burst', () => {
  it('runs a full collection once the loop is idle after the heap grew, and it collects garbage', async () => {
    const { next } = watch();
    const heapAtStart = v8.getHeapStatistics().total_heap_size;
    const held = burst();
    const garbage = new WeakRef({ unreachable: new Array(1000).fill(0) });
    const release = await next();
    expect(release.heapBeforeBytes).toBeGreaterThanOrEqual(heapAtStart + GROWTH_BYTES);
    expect(garbage.deref()).toBeUndefined();
    expect(held).toHaveLength(600_000);
  });

  it('never pauses a busy loop, and collects when it goes idle', async () => {
    const { releases, next } = watch();
    const held = burst();
    const released = next();
    await busyFor(10 * PERIOD_MS);
    expect(releases).toHaveLength(0);
    await released;
    expect(releases).toHaveLength(1);
    expect(held).toHaveLength(600_000);
  });

  it('collects once per burst, not once per idle period', async () => {
    const { releases, next } = watch();
    const first = burst();
    await next();
    await periods(10);
    expect(releases).toHaveLength(1);
    const second = burst();
    await next();
    expect(releases).toHaveLength(2);
    expect(first.length + second.length).toBe(1_200_000);
  });

  it('does not collect when the heap has not grown', async () => {
    const { releases } = watch();
    await periods(10);
    expect(releases).toHaveLength(0);
  });
});
