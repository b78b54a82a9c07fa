/**
 * Drives load with wrk (HTTP/1.1 over TLS) and h2load (HTTP/2 over TLS) against `https://localhost:<port>`
 * (localhost must resolve to 127.0.0.1; `checkLocalhost` verifies it) and reads their results:
 * completed requests, req/s, p99 latency and errors. One thread (or `threads`), a fixed number of connections, a fixed
 * duration (or, for h2load, a fixed number of requests); each run is killed if it overstays its duration
 * by 15 s.
 * Throws `ProximationError('ERR_BENCH_LOADGEN')` when a tool's output cannot be read or h2load does not
 * negotiate h2, and what `ChildSupervisor.run` throws when the tool fails.
 */
import { lookup } from 'node:dns/promises';
import { readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { ProximationError } from '@proximation/shared';
import type { ChildSupervisor } from './children.js';

export interface LoadResult {
  /** Requests answered with 2xx/3xx. */
  readonly requests: number;
  readonly reqPerSec: number;
  readonly p99Ms: number;
  /** Socket errors, timeouts and non-2xx/3xx answers. */
  readonly errors: number;
  /** h2load only: answers by status class, such as { "2xx": 1200, "5xx": 3 }. */
  readonly statusClasses?: Readonly<Record<string, number>>;
}

export interface LoadRun {
  readonly port: number;
  readonly path: string;
  readonly seconds: number;
  readonly connections: number;
  /** Send `Connection: close` so that every request needs a new TLS connection (wrk only). */
  readonly closeEachRequest?: boolean;
  /**
   * h2load only: stop after this many requests instead of after `seconds` (count mode), which still
   * bounds the run's time by `seconds` + 15 s.
   */
  readonly requests?: number;
  /** Load generator threads (default 1): more when the proxy has every core and one thread would be the limit. */
  readonly threads?: number | undefined;
}

const OVERSTAY_MS = 15_000;

/** wrk and h2load resolve the name themselves; this makes sure they can only reach 127.0.0.1. */
export async function checkLocalhost(): Promise<void> {
  const addresses = await lookup('localhost', { all: true });
  if (addresses.some((a) => a.address !== '127.0.0.1')) {
    throw new ProximationError(
      'ERR_BENCH_LOADGEN',
      `localhost resolves to ${addresses.map((a) => a.address).join(', ')}; the benchmark needs it to be ` +
        'only 127.0.0.1 (check /etc/hosts).',
    );
  }
}

function unreadable(tool: string, what: string, output: string): ProximationError {
  return new ProximationError('ERR_BENCH_LOADGEN', `cannot read ${what} from ${tool} output:\n${output}`);
}

const WRK_TIME_UNIT_MS: Readonly<Record<string, number>> = { us: 0.001, ms: 1, s: 1000, m: 60_000 };

function parseWrk(output: string): LoadResult {
  const requests = /^\s*(\d+) requests in /m.exec(output);
  const rate = /^Requests\/sec:\s+([\d.]+)/m.exec(output);
  const p99 = /^\s*99%\s+([\d.]+)(us|ms|s|m)\s*$/m.exec(output);
  if (requests === null) throw unreadable('wrk', 'the request count', output);
  if (rate === null) throw unreadable('wrk', 'Requests/sec', output);
  if (p99 === null) throw unreadable('wrk', 'the 99% latency', output);
  const socket = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(output);
  const non2xx = /Non-2xx or 3xx responses: (\d+)/.exec(output);
  const socketErrors = socket === null ? 0 : socket.slice(1).reduce((sum, n) => sum + Number(n), 0);
  const badAnswers = non2xx === null ? 0 : Number(non2xx[1]);
  return {
    requests: Number(requests[1]) - badAnswers,
    reqPerSec: Number(rate[1]),
    p99Ms: Number(p99[1]) * (WRK_TIME_UNIT_MS[p99[2] as string] as number),
    errors: socketErrors + badAnswers,
  };
}

export async function runWrk(children: ChildSupervisor, core: number | undefined, run: LoadRun): Promise<LoadResult> {
  const args = [`-t${run.threads ?? 1}`, `-c${run.connections}`, `-d${run.seconds}s`, '--latency'];
  if (run.closeEachRequest === true) args.push('-H', 'Connection: close');
  args.push(`https://localhost:${run.port}${run.path}`);
  const { stdout, stderr } = await children.run(
    { name: 'wrk', command: 'wrk', args, core },
    run.seconds * 1000 + OVERSTAY_MS,
  );
  return parseWrk(stdout + stderr);
}

/** Nearest-rank percentile of request durations in an h2load log (`start\tstatus\tmicroseconds`). */
function p99FromH2loadLog(log: string): number {
  const durations: number[] = [];
  for (const line of log.split('\n')) {
    const fields = line.split('\t');
    if (fields.length === 3 && fields[1] === '200') durations.push(Number(fields[2]));
  }
  if (durations.length === 0) return Number.NaN;
  const sorted = Float64Array.from(durations).sort();
  return (sorted[Math.ceil(sorted.length * 0.99) - 1] as number) / 1000;
}

function parseH2load(output: string, log: string): LoadResult {
  if (!/^Application protocol: h2$/m.test(output)) throw unreadable('h2load', 'negotiated protocol h2', output);
  // Short count-mode runs report milliseconds ("finished in 796.15ms").
  const finished = /^finished in [\d.]+m?s, ([\d.]+) req\/s/m.exec(output);
  const counts = /^requests: .* (\d+) succeeded, (\d+) failed, (\d+) errored, (\d+) timeout/m.exec(output);
  if (finished === null) throw unreadable('h2load', 'req/s', output);
  if (counts === null) throw unreadable('h2load', 'request counts', output);
  const classes = /^status codes: (\d+) 2xx, (\d+) 3xx, (\d+) 4xx, (\d+) 5xx$/m.exec(output);
  return {
    requests: Number(counts[1]),
    reqPerSec: Number(finished[1]),
    p99Ms: p99FromH2loadLog(log),
    errors: Number(counts[2]) + Number(counts[3]) + Number(counts[4]),
    ...(classes === null ? {} : { statusClasses: { '2xx': Number(classes[1]), '3xx': Number(classes[2]), '4xx': Number(classes[3]), '5xx': Number(classes[4]) } }),
  };
}

export async function runH2load(
  children: ChildSupervisor,
  core: number | undefined,
  run: LoadRun,
  scratchDir: string,
): Promise<LoadResult> {
  const logFile = join(scratchDir, 'h2load-requests.log');
  const args = [
    `-t${run.threads ?? 1}`, `-c${run.connections}`, '-m10', run.requests === undefined ? `-D${run.seconds}` : `-n${run.requests}`,
    `--connect-to=127.0.0.1:${run.port}`, `--log-file=${logFile}`,
    `https://localhost:${run.port}${run.path}`,
  ];
  try {
    const { stdout, stderr } = await children.run(
      { name: 'h2load', command: 'h2load', args, core },
      run.seconds * 1000 + OVERSTAY_MS,
    );
    return parseH2load(stdout + stderr, await readFile(logFile, 'utf8'));
  } finally {
    await rm(logFile, { force: true });
  }
}
