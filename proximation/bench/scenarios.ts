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
  readonly core: number;
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
}

export const SCENARIOS: readonly Scenario[] = [
  {
    key: 'https-keepalive-100b',
    label: 'HTTPS keep-alive 100 B',
    needsHttp2: false,
    run: (t, seconds) => runWrk(t.children, t.core, { port: t.port, path: SMALL_PATH, seconds, connections: t.connections }),
  },
  {
    key: 'https-keepalive-64kib',
    label: 'HTTPS keep-alive 64 KiB',
    needsHttp2: false,
    run: (t, seconds) => runWrk(t.children, t.core, { port: t.port, path: LARGE_PATH, seconds, connections: t.connections }),
  },
  {
    key: 'http2-100b',
    label: 'HTTP/2 100 B (h2load -m10)',
    needsHttp2: true,
    run: (t, seconds) =>
      runH2load(t.children, t.core, { port: t.port, path: SMALL_PATH, seconds, connections: t.connections }, t.scratchDir),
  },
  {
    key: 'tls-handshake-per-request',
    label: 'new TLS connection per request',
    needsHttp2: false,
    run: (t, seconds) =>
      runWrk(t.children, t.core, {
        port: t.port,
        path: SMALL_PATH,
        seconds,
        connections: t.connections,
        closeEachRequest: true,
      }),
  },
];
