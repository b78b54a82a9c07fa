/**
 * The four measured scenarios, in the order each proxy runs them, and how each one drives load:
 * HTTPS keep-alive with 100-byte bodies (wrk), the same with 64 KiB bodies (wrk), HTTP/2 with 10 streams
 * per connection (h2load), and a new TLS connection (full handshake, no resumption) per request (wrk with
 * `Connection: close`). Throws what the load generators throw.
 */
import type { ChildSupervisor } from './children.js';
import { runH2load, runWrk, type LoadResult } from './load-generators.js';
import { LARGE_PATH, SMALL_PATH } from './upstream-paths.js';

export interface LoadTarget {
  readonly children: ChildSupervisor;
  /** Undefined: unpinned. */
  readonly core: number | undefined;
  /** Load generator threads; 1 unless set. */
  readonly threads?: number | undefined;
  readonly port: number;
  readonly connections: number;
  /** Directory for the load generator's temporary files. */
  readonly scratchDir: string;
}

export interface Scenario {
  /** Stable identifier in the JSON output. */
  readonly key: string;
  readonly label: string;
  readonly needsHttp2: boolean;
  run(target: LoadTarget, seconds: number): Promise<LoadResult>;
  /** The unmeasured run before `run`: about `seconds` of the same load. */
  warmUp(target: LoadTarget, seconds: number): Promise<LoadResult>;
}

/**
 * Requests per connection and second of the HTTP/2 warm-up. It runs in h2load's count mode: in timing
 * mode h2load (nghttp2 1.52) never ends when a TLS handshake completes after its window, and a one-second
 * window is shorter than 50 handshakes on one busy core can take.
 */
const H2_WARMUP_REQUESTS_PER_CONNECTION_SECOND = 200;

function wrkScenario(key: string, label: string, path: string, closeEachRequest: boolean): Scenario {
  const run = (t: LoadTarget, seconds: number): Promise<LoadResult> =>
    runWrk(t.children, t.core, { port: t.port, path, seconds, connections: t.connections, closeEachRequest, threads: t.threads });
  return { key, label, needsHttp2: false, run, warmUp: run };
}

export const SCENARIOS: readonly Scenario[] = [
  wrkScenario('https-keepalive-100b', 'HTTPS keep-alive 100 B', SMALL_PATH, false),
  wrkScenario('https-keepalive-64kib', 'HTTPS keep-alive 64 KiB', LARGE_PATH, false),
  {
    key: 'http2-100b',
    label: 'HTTP/2 100 B (h2load -m10)',
    needsHttp2: true,
    run: (t, seconds) =>
      runH2load(t.children, t.core, { port: t.port, path: SMALL_PATH, seconds, connections: t.connections, threads: t.threads }, t.scratchDir),
    warmUp: (t, seconds) =>
      runH2load(
        t.children,
        t.core,
        {
          port: t.port,
          path: SMALL_PATH,
          seconds,
          connections: t.connections,
          threads: t.threads,
          requests: t.connections * H2_WARMUP_REQUESTS_PER_CONNECTION_SECOND * seconds,
        },
        t.scratchDir,
      ),
  },
  wrkScenario('tls-handshake-per-request', 'new TLS connection per request', SMALL_PATH, true),
];
