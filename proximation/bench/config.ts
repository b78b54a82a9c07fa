/**
 * The benchmark's settings, read once from the environment and validated here (the only place that
 * reads `BENCH_*`). Guarantees every field is an integer inside its documented bounds, so the run is
 * bounded in count and time. Throws `ProximationError('ERR_BENCH_CONFIG')` naming the variable and value.
 */
import { ProximationError } from '@proximation/shared';

export interface BenchConfig {
  /** Rounds; every proxy runs every scenario once per round. */
  readonly rounds: number;
  /** Length of one measured run, seconds. */
  readonly seconds: number;
  /** Length of the unmeasured run before each measured one, seconds. */
  readonly warmupSeconds: number;
  /** Concurrent client connections for wrk and h2load. */
  readonly connections: number;
  /** Proxy keys to run (all when `BENCH_PROXIES` is unset). */
  readonly proxies: readonly string[] | undefined;
}

function intFromEnv(env: NodeJS.ProcessEnv, name: string, fallback: number, min: number, max: number): number {
  const raw = env[name];
  if (raw === undefined || raw === '') return fallback;
  const value = Number(raw);
  if (!Number.isInteger(value) || value < min || value > max) {
    throw new ProximationError(
      'ERR_BENCH_CONFIG',
      `${name}=${JSON.stringify(raw)} is not an integer from ${min} to ${max}; unset it to use ${fallback}.`,
    );
  }
  return value;
}

export function readBenchConfig(env: NodeJS.ProcessEnv, knownProxies: readonly string[]): BenchConfig {
  const proxiesRaw = env['BENCH_PROXIES'];
  let proxies: string[] | undefined;
  if (proxiesRaw !== undefined && proxiesRaw !== '') {
    proxies = proxiesRaw.split(',').map((p) => p.trim());
    const unknown = proxies.filter((p) => !knownProxies.includes(p));
    if (unknown.length > 0 || proxies.length === 0) {
      throw new ProximationError(
        'ERR_BENCH_CONFIG',
        `BENCH_PROXIES=${JSON.stringify(proxiesRaw)} names unknown proxies ${JSON.stringify(unknown)}; ` +
          `use a comma-separated subset of ${knownProxies.join(',')}.`,
      );
    }
  }
  return {
    rounds: intFromEnv(env, 'BENCH_ROUNDS', 3, 1, 20),
    seconds: intFromEnv(env, 'BENCH_SECONDS', 5, 1, 60),
    warmupSeconds: intFromEnv(env, 'BENCH_WARMUP_SECONDS', 1, 1, 30),
    connections: intFromEnv(env, 'BENCH_CONNECTIONS', 50, 1, 1000),
    proxies,
  };
}
