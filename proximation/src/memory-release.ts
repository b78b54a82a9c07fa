/**
 * Gives the memory a burst of traffic made V8 take back to the system once the process is idle again.
 *
 * Why: under load V8 grows its heap (on Node 26 the young generation alone reaches ~60 MiB, and freed
 * pages are pooled for reuse) and shrinks it only inside a garbage collection that finds the process
 * idle. Node never tells V8 it is idle, and an idle proxy allocates nothing, so that collection may not
 * come for minutes: V8's memory reducer keeps waiting (`--trace-memory-reducer` said "high alloc" for the
 * whole minute watched) and RSS stays at the burst's peak (measured: 250 MiB after the benchmark's
 * scenarios, still 250 MiB a minute later; 148 MiB ten seconds after one full collection, 104 MiB with
 * jemalloc as in the image). An ECS memory alarm or scale-in rule sees the peak meanwhile.
 *
 * Guarantees: every `periodMs` it looks at the event loop's utilisation over the period and at the heap's
 * size; it runs one full collection only when the loop was idle (utilisation at most `idleUtilization`)
 * for the whole period and the heap has grown by at least `growthBytes` over the smallest size seen since
 * the last collection it ran (or since start). So a busy or steadily loaded process is never paused, and
 * an idle one is paused once per burst, not once per period. The pause (40-130 ms measured) lands on a
 * loop that had nothing to do. The timer never keeps the process alive. Throws nothing.
 */
import { performance, type EventLoopUtilization } from 'node:perf_hooks';
import v8 from 'node:v8';
import vm from 'node:vm';
import type { Logger } from './logger.js';

export interface MemoryReleaseOptions {
  readonly periodMs: number;
  /** Event-loop utilisation (0-1) at or below which a period counts as idle. */
  readonly idleUtilization: number;
  readonly growthBytes: number;
  /** Told after each collection: heap sizes before and after, and how long the pause was. */
  onRelease(release: { heapBeforeBytes: number; heapAfterBytes: number; pauseMs: number }): void;
}

/**
 * A collection costs the next burst about 10% more CPU in its first seconds while V8 grows the heap again
 * (paired runs: 90 against 80 µs per request), so it waits until the process has been quiet for a whole
 * minute, not for a lull in bursty traffic; a minute is also the resolution of ECS's memory metrics.
 */
export const DEFAULT_MEMORY_RELEASE = { periodMs: 60_000, idleUtilization: 0.01, growthBytes: 16 * 1024 * 1024 } as const;

let collect: (() => void) | undefined;

/**
 * V8's full collection without starting Node with `--expose-gc` (the bin entry point and `npm start`
 * cannot pass Node flags portably): the flag exposes `gc` to contexts created after it is set, so the
 * function comes from a fresh context and the global scope of the process stays as it was.
 */
export function fullCollection(): () => void {
  if (collect === undefined) {
    v8.setFlagsFromString('--expose-gc');
    collect = vm.runInNewContext('gc') as () => void;
  }
  return collect;
}

function heapBytes(): number {
  return v8.getHeapStatistics().total_heap_size;
}

/** Starts watching; returns the function that stops it. */
export function startMemoryRelease(options: MemoryReleaseOptions): () => void {
  const gc = fullCollection();
  let baseline = heapBytes();
  let last: EventLoopUtilization = performance.eventLoopUtilization();
  const timer = setInterval(() => {
    const now = performance.eventLoopUtilization();
    const idle = performance.eventLoopUtilization(now, last).utilization <= options.idleUtilization;
    last = now;
    const before = heapBytes();
    // V8 returns much of the space in the seconds after a collection, not during it: the baseline is the
    // smallest size seen since, or a heap measured just after the collection would hide the next burst.
    baseline = Math.min(baseline, before);
    if (!idle || before - baseline < options.growthBytes) return;
    const started = performance.now();
    gc();
    baseline = heapBytes();
    // The collection itself was busy time; the next period must not count it against idleness.
    last = performance.eventLoopUtilization();
    options.onRelease({ heapBeforeBytes: before, heapAfterBytes: baseline, pauseMs: performance.now() - started });
  }, options.periodMs);
  timer.unref();
  return () => clearInterval(timer);
}

/** The release every serving process runs, with the defaults above, logged at info on `log`. */
export function releaseMemoryWhenIdle(log: Logger): () => void {
  return startMemoryRelease({
    ...DEFAULT_MEMORY_RELEASE,
    onRelease: (release) => log.info({ ...release, rssBytes: process.memoryUsage.rss() }, 'idle after a burst: heap collected'),
  });
}
