/**
 * The upstream servers the proxy knows, one per origin, each with its connection pool and its
 * passive-health state. The origin's scheme picks the pool: `http:`/`https:` the HTTP/1.1 keep-alive
 * pool (upstream-pool.ts), `h2c:`/`h2:` the HTTP/2 session pool (h2-upstream-pool.ts); both keep the
 * same contract, so forwarding, health checks, ejection, timeouts and metrics do not depend on it. An origin keeps one Upstream (and so one pool and one health record) for as long
 * as some routing-table generation refers to it; `retain` makes that set current, and pools that fell out
 * of it are closed gracefully: requests already on them finish (that is what makes a version switch drop
 * nothing), new ones never reach them.
 *
 * Passive ejection: a failure to connect (or a connect timeout) takes the upstream out of rotation for a
 * while, doubling per consecutive failure from `ejectBaseMs` up to `ejectMaxMs`; one success resets it.
 * Active health checks (health-check.ts) take it out while they fail.
 */
import { upstreamEndpoint } from '@proximation/shared';
import { Http2UpstreamPool } from './h2-upstream-pool.js';
import { UpstreamPool } from './upstream-pool.js';

export interface UpstreamOptions {
  connectTimeoutMs: number;
  /** Time to response headers and between body chunks. */
  timeoutMs: number;
  /** Largest response head (and trailer section) from an upstream, in bytes (HTTP/2: the header list as RFC 9113 counts it); default 16 KiB. */
  maxHeadBytes?: number;
  ejectBaseMs?: number;
  ejectMaxMs?: number;
}

/** An upstream out of this process's rotation, as the status page shows it. */
export interface UnavailableUpstream {
  upstream: string;
  state: 'down' | 'ejected';
}

/** Several processes' lists as one: an upstream out of rotation in any of them, `down` over `ejected`. */
export function mergeUnavailable(parts: readonly (readonly UnavailableUpstream[])[]): UnavailableUpstream[] {
  const merged = new Map<string, UnavailableUpstream>();
  for (const entry of parts.flat()) if (merged.get(entry.upstream)?.state !== 'down') merged.set(entry.upstream, entry);
  return [...merged.values()];
}

export class Upstream {
  readonly origin: string;
  readonly pool: UpstreamPool | Http2UpstreamPool;
  private consecutiveFailures = 0;
  private ejectedUntil = 0;
  private healthy = true;
  private failedChecks = 0;

  constructor(origin: string, private readonly options: UpstreamOptions) {
    this.origin = origin;
    const timeouts = { connectTimeoutMs: options.connectTimeoutMs, timeoutMs: options.timeoutMs, idleMs: 30_000 };
    this.pool = upstreamEndpoint(origin).http2
      ? new Http2UpstreamPool(origin, { ...timeouts, maxHeaderListSize: options.maxHeadBytes })
      : new UpstreamPool(origin, { ...timeouts, maxIdleMs: 120_000, maxHeadBytes: options.maxHeadBytes });
  }

  available(now: number): boolean {
    return this.healthy && now >= this.ejectedUntil;
  }

  /** Why it is out of rotation now: failing its active checks, or ejected after connect failures; undefined: in rotation. */
  outOfRotation(now: number): UnavailableUpstream['state'] | undefined {
    return !this.healthy ? 'down' : now < this.ejectedUntil ? 'ejected' : undefined;
  }

  /** Records an active check; says whether the upstream just went down or came back. */
  reportHealthCheck(passed: boolean, failuresToMarkDown: number): 'down' | 'up' | undefined {
    if (passed) {
      this.failedChecks = 0;
      if (this.healthy) return undefined;
      this.healthy = true;
      return 'up';
    }
    this.failedChecks++;
    if (!this.healthy || this.failedChecks < failuresToMarkDown) return undefined;
    this.healthy = false;
    return 'down';
  }

  /** When the upstream comes back into rotation (epoch ms; 0 when it never left). */
  get ejectedUntilMs(): number {
    return this.ejectedUntil;
  }

  reportConnectFailure(now: number): void {
    this.consecutiveFailures++;
    const base = this.options.ejectBaseMs ?? 2_000;
    const max = this.options.ejectMaxMs ?? 60_000;
    this.ejectedUntil = now + Math.min(max, base * 2 ** Math.min(this.consecutiveFailures - 1, 16));
  }

  reportSuccess(): void {
    if (this.consecutiveFailures !== 0) {
      this.consecutiveFailures = 0;
      this.ejectedUntil = 0;
    }
  }
}

export class Upstreams {
  private readonly byOrigin = new Map<string, Upstream>();

  constructor(private readonly options: UpstreamOptions) {}

  all(): IterableIterator<Upstream> {
    return this.byOrigin.values();
  }

  /** The upstreams out of rotation now, and why. */
  unavailable(now: number): UnavailableUpstream[] {
    return [...this.byOrigin.values()].flatMap((u) => {
      const state = u.outOfRotation(now);
      return state === undefined ? [] : [{ upstream: u.origin, state }];
    });
  }

  get(origin: string): Upstream {
    let upstream = this.byOrigin.get(origin);
    if (upstream === undefined) {
      upstream = new Upstream(origin, this.options);
      this.byOrigin.set(origin, upstream);
    }
    return upstream;
  }

  /** Keeps exactly these origins; the others' pools close once their requests are done. */
  retain(origins: ReadonlySet<string>): void {
    for (const [origin, upstream] of this.byOrigin) {
      if (!origins.has(origin)) {
        this.byOrigin.delete(origin);
        void upstream.pool.close();
      }
    }
  }

  /** Closes every pool: waits for requests in flight, then drops the connections. */
  async close(): Promise<void> {
    const pools = [...this.byOrigin.values()].map((u) => u.pool);
    this.byOrigin.clear();
    await Promise.all(pools.map((p) => p.close()));
  }

  /** Stops every pool at once, failing what is still in flight. */
  async destroy(): Promise<void> {
    const pools = [...this.byOrigin.values()].map((u) => u.pool);
    this.byOrigin.clear();
    await Promise.all(pools.map((p) => p.destroy()));
  }
}
