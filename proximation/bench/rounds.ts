/**
 * The measurement schedule: for each round, each proxy in turn (the order rotates between rounds so that
 * none always goes first) is started afresh, pinned to the proxy core, runs every scenario that applies
 * to it (warm-up + measured run each), has its memory read, and is stopped before the next one starts.
 * A scenario that fails is skipped in later rounds; a proxy that fails to start or exits is dropped.
 * Guarantees: at most rounds x proxies x scenarios measurements, and no measurement starts after the
 * time budget (`timeBudgetMs`) is spent: the run then ends early with `incomplete` set. Reports progress
 * through the callback. Throws only what setting up a proxy's directory throws.
 */
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { ProximationError, errorMessage, isProximationError } from '@proximation/shared';
import type { ChildSupervisor } from './children.js';
import type { BenchConfig } from './config.js';
import { measure, type Sample } from './measure.js';
import { rssMiB } from './proc-usage.js';
import type { ProxyUnderTest } from './proxy.js';
import { SCENARIOS, type Scenario } from './scenarios.js';
import type { ProxyRecord } from './summary.js';
import type { TlsMaterial } from './tls-material.js';
import type { Upstream } from './upstream.js';

/** Allowances for starting a proxy and for a run's start-up and teardown, for the time budget. */
const START_ALLOWANCE_S = 15;
const RUN_ALLOWANCE_S = 2;
/** How long each proxy sits idle after its last round before its memory is read again. */
export const IDLE_SECONDS = 30;
/** Key in `failures` for a failure of the proxy as a whole (it did not start, or it exited). */
const WHOLE_PROXY = '*';

export interface Schedule {
  readonly config: BenchConfig;
  readonly proxies: readonly ProxyUnderTest[];
  readonly children: ChildSupervisor;
  readonly workDir: string;
  readonly upstream: Upstream;
  readonly tls: TlsMaterial;
  readonly proxyCore: number;
  readonly loadCore: number;
  readonly ticksPerSecond: number;
  readonly progress: (line: string) => void;
}

export interface ScheduleOutcome {
  readonly records: readonly ProxyRecord[];
  /** Why the run ended before all rounds, or null when it completed. */
  readonly incomplete: string | null;
}

interface MutableRecord {
  readonly proxy: ProxyUnderTest;
  readonly samples: Map<string, Sample[]>;
  readonly rssAfterRuns: number[];
  rssAfterIdle: number | null;
  readonly failures: Map<string, string>;
}

export function scenariosFor(proxy: ProxyUnderTest): Scenario[] {
  return SCENARIOS.filter((s) => !s.needsHttp2 || proxy.supportsHttp2);
}

/** Upper bound of the measuring part of a run. */
export function timeBudgetMs(config: BenchConfig, proxies: readonly ProxyUnderTest[]): number {
  const perRound = proxies.reduce(
    (sum, p) =>
      sum + START_ALLOWANCE_S + scenariosFor(p).length * (config.seconds + config.warmupSeconds + RUN_ALLOWANCE_S),
    0,
  );
  return (perRound * config.rounds + proxies.length * IDLE_SECONDS + 60) * 1000;
}

function describeSample(s: Sample): string {
  return (
    `${Math.round(s.reqPerSec)} req/s, p99 ${s.p99Ms.toFixed(2)} ms, ${s.cpuUsPerRequest.toFixed(1)} µs/req, ` +
    `proxy CPU ${s.proxyCpuPercent.toFixed(0)}% (others on its core ${s.otherOnProxyCorePercent.toFixed(0)}%), ` +
    `RSS ${s.rssMiB.toFixed(0)} MiB` +
    (s.errors > 0 ? `, ${s.errors} ERRORS` : '')
  );
}

async function runProxyOnce(round: number, record: MutableRecord, schedule: Schedule, deadline: number): Promise<void> {
  const { proxy } = record;
  const { config, children } = schedule;
  const fail = (key: string, what: string, reason: string): void => {
    record.failures.set(key, reason);
    schedule.progress(`${proxy.label}, ${what} failed and is skipped from now on:\n${reason}`);
  };
  const pending = scenariosFor(proxy).filter((s) => !record.failures.has(s.key));
  if (record.failures.has(WHOLE_PROXY) || pending.length === 0) return;
  const dir = join(schedule.workDir, `${proxy.key}-round${round + 1}`);
  await mkdir(dir, { recursive: true });
  let running;
  try {
    running = await proxy.start({
      children,
      dir,
      core: schedule.proxyCore,
      upstream: schedule.upstream,
      tls: schedule.tls,
    });
  } catch (err) {
    fail(WHOLE_PROXY, 'start', errorMessage(err));
    return;
  }
  const { service } = running;
  try {
    for (const scenario of pending) {
      if (Date.now() > deadline) {
        throw new ProximationError(
          'ERR_BENCH_BUDGET',
          `the run spent its time budget before round ${round + 1}, ${proxy.label}, ${scenario.label}; ` +
            'the results are incomplete.',
        );
      }
      try {
        const sample = await measure(
          scenario,
          { children, core: schedule.loadCore, port: running.httpsPort, connections: config.connections, scratchDir: dir },
          {
            seconds: config.seconds,
            warmupSeconds: config.warmupSeconds,
            proxyPid: service.pid,
            proxyCore: schedule.proxyCore,
            ticksPerSecond: schedule.ticksPerSecond,
          },
        );
        record.samples.get(scenario.key)?.push(sample);
        schedule.progress(`round ${round + 1}/${config.rounds} ${proxy.label}, ${scenario.label}: ${describeSample(sample)}`);
      } catch (err) {
        const reason = `${errorMessage(err)}\nproxy log ends:\n${service.logTail()}`;
        if (service.exitStatus() !== undefined) {
          fail(WHOLE_PROXY, `${scenario.label} (the proxy exited: ${service.exitStatus()})`, reason);
          return;
        }
        fail(scenario.key, scenario.label, reason);
      }
    }
    record.rssAfterRuns.push(rssMiB(service.pid));
    if (round === config.rounds - 1) {
      // What an operator sees once a burst is over (V8 keeps its grown heap until a collection shrinks it).
      await new Promise((resolve) => setTimeout(resolve, IDLE_SECONDS * 1000));
      record.rssAfterIdle = rssMiB(service.pid);
    }
  } finally {
    await children.stop(service);
  }
}

export async function runSchedule(schedule: Schedule): Promise<ScheduleOutcome> {
  const records: MutableRecord[] = schedule.proxies.map((proxy) => ({
    proxy,
    samples: new Map(scenariosFor(proxy).map((s) => [s.key, []])),
    rssAfterRuns: [],
    rssAfterIdle: null,
    failures: new Map(),
  }));
  const deadline = Date.now() + timeBudgetMs(schedule.config, schedule.proxies);
  let incomplete: string | null = null;
  try {
    for (let round = 0; round < schedule.config.rounds; round++) {
      for (let i = 0; i < records.length; i++) {
        await runProxyOnce(round, records[(i + round) % records.length] as MutableRecord, schedule, deadline);
      }
    }
  } catch (err) {
    if (!isProximationError(err, 'ERR_BENCH_BUDGET')) throw err;
    incomplete = err.message;
    schedule.progress(incomplete);
  }
  return {
    records: records.map((r) => ({
      key: r.proxy.key,
      label: r.proxy.label,
      samples: r.samples,
      rssAfterRuns: r.rssAfterRuns,
      rssAfterIdle: r.rssAfterIdle,
      failures: Object.fromEntries(r.failures),
    })),
    incomplete,
  };
}
