/**
 * One measurement of one proxy in one scenario: an unmeasured warm-up run, then a measured run bracketed
 * by CPU readings of the proxy's process tree, then its resident memory. Guarantees the CPU figures
 * cover exactly the measured run. Throws what the scenario and /proc readers throw.
 */
import { performance } from 'node:perf_hooks';
import { coreBusySeconds, cpuSecondsBetween, cpuSnapshot, rssMiB } from './proc-usage.js';
import type { LoadTarget, Scenario } from './scenarios.js';

export interface Sample {
  readonly reqPerSec: number;
  readonly p99Ms: number;
  /** Proxy CPU (user + system, all its processes) divided by completed requests. */
  readonly cpuUsPerRequest: number;
  /** Proxy CPU over wall time; near 100 means the proxy's core was the bottleneck. */
  readonly proxyCpuPercent: number;
  /**
   * Busy time of the proxy's core not spent in the proxy, over wall time: other processes on the machine
   * (and the kernel's network work) competing with the proxy. High values make the sample suspect.
   */
  readonly otherOnProxyCorePercent: number;
  /** Resident memory of the proxy's processes right after the run. */
  readonly rssMiB: number;
  readonly requests: number;
  readonly errors: number;
}

export interface MeasureOptions {
  readonly seconds: number;
  readonly warmupSeconds: number;
  readonly proxyPid: number;
  /** Undefined: the proxy has the whole machine, and "others" are measured over every core. */
  readonly proxyCore: number | undefined;
  readonly ticksPerSecond: number;
}

export async function measure(scenario: Scenario, target: LoadTarget, options: MeasureOptions): Promise<Sample> {
  await scenario.warmUp(target, options.warmupSeconds);
  const before = cpuSnapshot(options.proxyPid);
  const coreBefore = coreBusySeconds(options.proxyCore, options.ticksPerSecond);
  const started = performance.now();
  const result = await scenario.run(target, options.seconds);
  const wallSeconds = (performance.now() - started) / 1000;
  const coreSeconds = coreBusySeconds(options.proxyCore, options.ticksPerSecond) - coreBefore;
  const cpuSeconds = cpuSecondsBetween(before, cpuSnapshot(options.proxyPid), options.ticksPerSecond);
  return {
    reqPerSec: result.reqPerSec,
    p99Ms: result.p99Ms,
    cpuUsPerRequest: result.requests > 0 ? (cpuSeconds * 1e6) / result.requests : Number.NaN,
    proxyCpuPercent: (cpuSeconds / wallSeconds) * 100,
    otherOnProxyCorePercent: (Math.max(0, coreSeconds - cpuSeconds) / wallSeconds) * 100,
    rssMiB: rssMiB(options.proxyPid),
    requests: result.requests,
    errors: result.errors,
  };
}
