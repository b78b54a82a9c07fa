/**
 * The measurement schedule. Every proxy is started once, all pinned to the proxy core (an idle proxy
 * uses no CPU there, and the CPU others use on that core is measured with each sample). Then, round by
 * round and scenario by scenario, each proxy in turn (the order rotates between rounds so that none
 * always goes first) gets a warm-up and a measured run. Interleaving at the level of one run is the
 * point: this machine's speed drifts by up to 2x over minutes, and proxies measured minutes apart were
 * compared in different weather. After the last round each proxy's memory is read, and read again after
 * `idleSeconds` (IDLE_SECONDS unless set; 0: not again) without load; then every proxy is stopped. With
 * `proxyCore` undefined every proxy gets the whole machine, shared with the load generator.
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
import type { ProxyUnderTest, RunningProxy } from './proxy.js';
import { describeMachine, type MachineInfo } from './machine-info.js';
import { freePorts } from './ports.js';
import { SCENARIOS, type Scenario } from './scenarios.js';
import { summarizeProxy, type ProxyRecord, type ProxySummary } from './summary.js';
import { makeLocalhostCertificate, type TlsMaterial } from './tls-material.js';
import { startUpstream, type Upstream } from './upstream.js';

/** Allowances for starting a proxy and for a run's start-up and teardown, for the time budget. */
const START_ALLOWANCE_S = 15;
const RUN_ALLOWANCE_S = 2;
/** How long the proxies sit without load after the last round before their memory is read again. */
export const IDLE_SECONDS = 150;
/** Key in `failures` for a failure of the proxy as a whole (it did not start, or it exited). */
const WHOLE_PROXY = '*';

export interface Schedule {
  readonly config: BenchConfig;
  readonly proxies: readonly ProxyUnderTest[];
  readonly children: ChildSupervisor;
  readonly workDir: string;
  readonly upstream: Upstream;
  readonly tls: TlsMaterial;
  readonly proxyCore: number | undefined;
  readonly loadCore: number | undefined;
  readonly ticksPerSecond: number;
  readonly progress: (line: string) => void;
  /** The scenarios to run (all of SCENARIOS unless set). */
  readonly scenarios?: readonly Scenario[];
  readonly idleSeconds?: number;
  /** Load generator threads (1 unless set). */
  readonly loadThreads?: number;
}

export interface ScheduleOutcome {
  readonly records: readonly ProxyRecord[];
  /** Why the run ended before all rounds, or null when it completed. */
  readonly incomplete: string | null;
}

interface MutableRecord {
  readonly proxy: ProxyUnderTest;
  readonly samples: Map<string, Sample[]>;
  running: RunningProxy | undefined;
  rssAfterRuns: number | null;
  rssAfterIdle: number | null;
  readonly failures: Map<string, string>;
}

export function scenariosFor(proxy: ProxyUnderTest, scenarios: readonly Scenario[] = SCENARIOS): Scenario[] {
  return scenarios.filter((s) => !s.needsHttp2 || proxy.supportsHttp2);
}

/** Upper bound of the measuring part of a run. */
export function timeBudgetMs(
  config: BenchConfig,
  proxies: readonly ProxyUnderTest[],
  scenarios: readonly Scenario[] = SCENARIOS,
  idleSeconds = IDLE_SECONDS,
): number {
  const perRound = proxies.reduce(
    (sum, p) => sum + scenariosFor(p, scenarios).length * (config.seconds + config.warmupSeconds + RUN_ALLOWANCE_S),
    0,
  );
  return (proxies.length * START_ALLOWANCE_S + perRound * config.rounds + idleSeconds + 60) * 1000;
}

function describeSample(s: Sample): string {
  return (
    `${Math.round(s.reqPerSec)} req/s, p99 ${s.p99Ms.toFixed(2)} ms, ${s.cpuUsPerRequest.toFixed(1)} µs/req, ` +
    `proxy CPU ${s.proxyCpuPercent.toFixed(0)}% (others on its core ${s.otherOnProxyCorePercent.toFixed(0)}%), ` +
    `RSS ${s.rssMiB.toFixed(0)} MiB` +
    (s.errors > 0 ? `, ${s.errors} ERRORS` : '')
  );
}

function failer(record: MutableRecord, schedule: Schedule): (key: string, what: string, reason: string) => void {
  return (key, what, reason) => {
    record.failures.set(key, reason);
    schedule.progress(`${record.proxy.label}, ${what} failed and is skipped from now on:\n${reason}`);
  };
}

async function start(record: MutableRecord, schedule: Schedule): Promise<void> {
  const dir = join(schedule.workDir, record.proxy.key);
  await mkdir(dir, { recursive: true });
  try {
    record.running = await record.proxy.start({
      children: schedule.children,
      dir,
      core: schedule.proxyCore,
      upstream: schedule.upstream,
      tls: schedule.tls,
    });
  } catch (err) {
    failer(record, schedule)(WHOLE_PROXY, 'start', errorMessage(err));
  }
}

async function measureOnce(round: number, scenario: Scenario, record: MutableRecord, schedule: Schedule): Promise<void> {
  const { config, children } = schedule;
  const running = record.running;
  if (running === undefined || record.failures.has(scenario.key)) return;
  const { service } = running;
  const fail = failer(record, schedule);
  try {
    const sample = await measure(
      scenario,
      {
        children,
        core: schedule.loadCore,
        port: running.httpsPort,
        connections: config.connections,
        threads: schedule.loadThreads,
        scratchDir: join(schedule.workDir, record.proxy.key),
      },
      {
        seconds: config.seconds,
        warmupSeconds: config.warmupSeconds,
        proxyPid: service.pid,
        proxyCore: schedule.proxyCore,
        ticksPerSecond: schedule.ticksPerSecond,
      },
    );
    record.samples.get(scenario.key)?.push(sample);
    schedule.progress(`round ${round + 1}/${config.rounds} ${record.proxy.label}, ${scenario.label}: ${describeSample(sample)}`);
  } catch (err) {
    const reason = `${errorMessage(err)}\nproxy log ends:\n${service.logTail()}`;
    if (service.exitStatus() !== undefined) {
      fail(WHOLE_PROXY, `${scenario.label} (the proxy exited: ${service.exitStatus()})`, reason);
      record.running = undefined;
      return;
    }
    fail(scenario.key, scenario.label, reason);
  }
}

export async function runSchedule(schedule: Schedule): Promise<ScheduleOutcome> {
  const scenarios = schedule.scenarios ?? SCENARIOS;
  const idleSeconds = schedule.idleSeconds ?? IDLE_SECONDS;
  const records: MutableRecord[] = schedule.proxies.map((proxy) => ({
    proxy,
    samples: new Map(scenariosFor(proxy, scenarios).map((s) => [s.key, []])),
    running: undefined,
    rssAfterRuns: null,
    rssAfterIdle: null,
    failures: new Map(),
  }));
  const deadline = Date.now() + timeBudgetMs(schedule.config, schedule.proxies, scenarios, idleSeconds);
  let incomplete: string | null = null;
  try {
    for (const record of records) await start(record, schedule);
    for (let round = 0; round < schedule.config.rounds; round++) {
      for (const scenario of scenarios) {
        for (let i = 0; i < records.length; i++) {
          const record = records[(i + round) % records.length] as MutableRecord;
          if (!scenariosFor(record.proxy, scenarios).includes(scenario)) continue;
          if (Date.now() > deadline) {
            throw new ProximationError(
              'ERR_BENCH_BUDGET',
              `the run spent its time budget before round ${round + 1}, ${scenario.label}, ${record.proxy.label}; ` +
                'the results are incomplete.',
            );
          }
          await measureOnce(round, scenario, record, schedule);
        }
      }
    }
    const live = records.filter((r) => r.running !== undefined);
    for (const r of live) r.rssAfterRuns = rssMiB((r.running as RunningProxy).service.pid);
    if (idleSeconds > 0) {
      // What an operator sees once a burst is over (V8 keeps its grown heap until a collection shrinks it).
      schedule.progress(`reading memory again after ${idleSeconds} s without load`);
      await new Promise((resolve) => setTimeout(resolve, idleSeconds * 1000));
      for (const r of live) r.rssAfterIdle = rssMiB((r.running as RunningProxy).service.pid);
    }
  } catch (err) {
    if (!isProximationError(err, 'ERR_BENCH_BUDGET')) throw err;
    incomplete = err.message;
    schedule.progress(incomplete);
  } finally {
    for (const r of records) if (r.running !== undefined) await schedule.children.stop(r.running.service);
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

export type Placement = Pick<Schedule, 'proxyCore' | 'loadCore' | 'scenarios' | 'idleSeconds' | 'loadThreads'>;

/**
 * A whole measuring run: describes the machine, makes the certificate, starts the upstream (on the load
 * core), runs the schedule, stops the upstream, and summarises each proxy's samples.
 */
export async function measureProxies(
  base: { children: ChildSupervisor; workDir: string; config: BenchConfig; proxies: readonly ProxyUnderTest[]; progress: (line: string) => void },
  placement: Placement,
): Promise<{ machine: MachineInfo; summaries: ProxySummary[]; incomplete: string | null }> {
  const { children, workDir } = base;
  const machine = await describeMachine(children);
  const tls = await makeLocalhostCertificate(children, join(workDir, 'tls'));
  const [upstreamPort] = (await freePorts(1)) as [number];
  const upstream = await startUpstream(children, join(workDir, 'upstream'), upstreamPort, placement.loadCore);
  const outcome = await runSchedule({ ...base, ...placement, upstream, tls, ticksPerSecond: machine.clockTicksPerSecond });
  await children.stop(upstream.service);
  return { machine, summaries: outcome.records.map(summarizeProxy), incomplete: outcome.incomplete };
}
