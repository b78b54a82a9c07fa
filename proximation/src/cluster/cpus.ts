/**
 * How many CPUs this process may really use: the container's CPU quota where the cgroup sets one, else
 * `os.availableParallelism()`. The quota matters because many container runtimes (ECS among them)
 * report the host's CPUs to `os.availableParallelism()`, while the task may use only its share.
 *
 * Reads cgroup v2 (`/sys/fs/cgroup/cpu.max`: "max 100000" or "200000 100000") and, where only v1 is
 * mounted, `/sys/fs/cgroup/cpu/cpu.cfs_quota_us` (-1: no quota) with `cpu.cfs_period_us`. A fractional
 * quota (1.5 CPUs) rounds up: the half CPU is still worth a worker. Never less than 1, never more than
 * the CPUs the kernel lets this process run on. Throws nothing: an unreadable file means no quota.
 */
import { readFileSync } from 'node:fs';
import os from 'node:os';

/** CPUs allowed by a quota of `quotaUs` per `periodUs`; undefined when there is no quota. */
export function quotaCpus(quotaUs: number, periodUs: number): number | undefined {
  if (!Number.isFinite(quotaUs) || quotaUs <= 0 || !Number.isFinite(periodUs) || periodUs <= 0) return undefined;
  return Math.max(1, Math.ceil(quotaUs / periodUs));
}

/** The quota in a cgroup v2 `cpu.max` line; undefined for "max" or anything unreadable. */
export function parseCpuMax(text: string): number | undefined {
  const [quota, period = '100000'] = text.trim().split(/\s+/);
  if (quota === undefined || quota === 'max') return undefined;
  return quotaCpus(Number(quota), Number(period));
}

function read(file: string): string | undefined {
  try {
    return readFileSync(file, 'utf8');
  } catch {
    return undefined;
  }
}

function cgroupQuotaCpus(root: string): number | undefined {
  const v2 = read(`${root}/cpu.max`);
  if (v2 !== undefined) return parseCpuMax(v2);
  const v1Quota = read(`${root}/cpu/cpu.cfs_quota_us`);
  const v1Period = read(`${root}/cpu/cpu.cfs_period_us`);
  if (v1Quota === undefined || v1Period === undefined) return undefined;
  return quotaCpus(Number(v1Quota.trim()), Number(v1Period.trim()));
}

/** The CPUs this process may use; `cgroupRoot` is for tests. */
export function availableCpus(cgroupRoot = '/sys/fs/cgroup'): number {
  const parallelism = Math.max(1, os.availableParallelism());
  return Math.min(parallelism, cgroupQuotaCpus(cgroupRoot) ?? parallelism);
}
