/**
 * Prometheus metrics of one proximation server, in the text exposition format served by the admin
 * listener's `GET /metrics`.
 *
 * - Each `Metrics` owns its own prom-client `Registry` (never the global default one), so several servers
 *   in one process (the tests) keep separate counts, and Node's default process metrics are collected
 *   into it.
 * - `proximation_requests_total{site,version,status}` and `proximation_upstream_response_seconds{site,version}`
 *   are fed once per exchange by `exchange()`. Label children are bound once per route and status and
 *   cached (keyed on the route object, which the router replaces on each table change, so a WeakMap lets
 *   old tables' entries go): the request path builds no label object. Cardinality stays bounded: site and
 *   version come from the routing table, status is an HTTP status code, and every unknown host counts
 *   under site="" version="".
 * - State gauges (connections, WebSockets, client buffered bytes, routing generation, certificate expiry,
 *   storage reachable) are read from their sources at scrape time, so nothing on the request path updates them.
 *   `proximation_storage_up` is 1 while the shared storage answers the routing table's reads (the
 *   instance's watcher, `storageSource`), 0 while it does not (Redis unreachable, the directory
 *   unreadable) and the proxy serves from memory; 1 in a process that reads no storage (a worker), so
 *   the minimum over an instance's processes is the instance's.
 * - `proximation_limit_hits_total{limit}` counts each time a limit that bounds an abusive client acted
 *   (a connection closed, a stream reset, a 429/431 answered, a request made to wait); `limit` is one of `LIMITS`, and every
 *   series exists from the start at 0.
 * - Nothing here throws once constructed; `exposition()` rejects only if a collector does.
 */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

/** Where the state gauges read from, at each scrape. */
export interface MetricsSources {
  /** Open client connections on the HTTPS listener. */
  connections(): number;
  /** Open WebSocket tunnels. */
  websockets(): number;
  /** Generation of the routing table being served (-1 before the first). */
  routesGeneration(): number;
  /** Response bytes written towards clients and not flushed yet (client-buffers.ts). */
  clientBufferedBytes(): number;
}

/** The labels of a routed exchange; the router's `Route` is one. Unknown hosts have none. */
export interface RouteLabels {
  readonly site: string;
  readonly version: string | undefined;
}

/** What the proxy handler calls once per exchange. */
export interface ExchangeObserver {
  /** @param upstreamSeconds time from the request to the end of the response, when an upstream answered it over HTTP (not a WebSocket tunnel) */
  exchange(route: RouteLabels | undefined, status: number, upstreamSeconds: number | undefined): void;
}

export type RenewalResult = 'success' | 'failure';

/** The limits against abusive clients that count in proximation_limit_hits_total (the README's Security section lists them). */
export const LIMITS = [
  'tls_handshake_timeout',
  'headers_timeout',
  'header_list_size',
  'h2_request_timeout',
  'connections_per_address',
  'request_rate_per_address',
  'upstream_requests_per_connection',
  'upstream_requests_per_address',
  'buffered_bytes_per_connection',
  'buffered_bytes_per_address',
] as const;
export type Limit = (typeof LIMITS)[number];

/** Told each time a limit acts. */
export interface LimitObserver {
  limitHit(limit: Limit): void;
}

/** Upstream timeout is 60 s by default, so the buckets reach it. */
const RESPONSE_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60];

interface RouteChildren {
  byStatus: Map<number, Counter.Internal>;
  response: Histogram.Internal<'site' | 'version'>;
  site: string;
  version: string;
}

export class Metrics implements ExchangeObserver, LimitObserver {
  readonly registry = new Registry();
  private readonly requests: Counter<'site' | 'version' | 'status'>;
  private readonly responseSeconds: Histogram<'site' | 'version'>;
  private readonly renewals: Counter<'result'>;
  private readonly limitHits = new Map<Limit, Counter.Internal>();
  private readonly children = new WeakMap<RouteLabels, RouteChildren>();
  private readonly unrouted: RouteChildren;
  /** notAfter of each served certificate, by name. */
  private readonly expiries = new Map<string, Date>();
  private storageReachable: () => boolean = () => true;

  constructor(sources: MetricsSources) {
    const registers = [this.registry];
    this.requests = new Counter({
      name: 'proximation_requests_total',
      help: 'Requests answered on the HTTPS listener, by site, active version and HTTP status (unknown hosts: site="")',
      labelNames: ['site', 'version', 'status'],
      registers,
    });
    this.responseSeconds = new Histogram({
      name: 'proximation_upstream_response_seconds',
      help: 'Time from a request to the end of its response, for requests an upstream answered (WebSockets excluded)',
      labelNames: ['site', 'version'],
      buckets: RESPONSE_BUCKETS,
      registers,
    });
    new Gauge({
      name: 'proximation_active_connections',
      help: 'Open client connections on the HTTPS listener',
      registers,
      collect() {
        this.set(sources.connections());
      },
    });
    new Gauge({
      name: 'proximation_websockets_open',
      help: 'Open WebSocket tunnels',
      registers,
      collect() {
        this.set(sources.websockets());
      },
    });
    new Gauge({
      name: 'proximation_client_buffered_bytes',
      help: 'Response bytes written towards clients and not yet flushed to them (bounded per client connection and address)',
      registers,
      collect() {
        this.set(sources.clientBufferedBytes());
      },
    });
    new Gauge({
      name: 'proximation_routes_generation',
      help: 'Generation of the routing table being served (-1 before the first)',
      registers,
      // Summed over worker processes (cluster/primary.ts), the lowest is the one every worker serves.
      aggregator: 'min',
      collect() {
        this.set(sources.routesGeneration());
      },
    });
    const storageUp = (): number => (this.storageReachable() ? 1 : 0);
    new Gauge({
      name: 'proximation_storage_up',
      help: 'Whether the shared storage (directory or Redis) answered the last read of the routing table: 1 yes, 0 no (serving from memory)',
      registers,
      aggregator: 'min',
      collect() {
        this.set(storageUp());
      },
    });
    const expiries = this.expiries;
    new Gauge({
      name: 'proximation_certificate_expiry_seconds',
      help: 'Seconds until the notAfter of each certificate served, by name (negative once expired)',
      labelNames: ['name'],
      registers,
      aggregator: 'min',
      collect() {
        this.reset();
        const now = Date.now();
        for (const [name, notAfter] of expiries) this.set({ name }, (notAfter.getTime() - now) / 1000);
      },
    });
    this.renewals = new Counter({
      name: 'proximation_certificate_renewals_total',
      help: 'Certificate orders placed by this instance (first issuance included), by result',
      labelNames: ['result'],
      registers,
    });
    // Both series exist from the start, so an alert on failures sees 0 rather than no data.
    this.renewals.inc({ result: 'success' }, 0);
    this.renewals.inc({ result: 'failure' }, 0);
    const limits = new Counter({
      name: 'proximation_limit_hits_total',
      help: 'Times a limit against abusive clients acted (connection closed, stream reset, 429/431 answered, request made to wait), by limit',
      labelNames: ['limit'],
      registers,
    });
    for (const limit of LIMITS) {
      const child = limits.labels({ limit });
      child.inc(0);
      this.limitHits.set(limit, child);
    }
    collectDefaultMetrics({ register: this.registry });
    this.unrouted = this.bind('', '');
  }

  get contentType(): string {
    return this.registry.contentType;
  }

  /** The text exposition of every metric of this server. */
  exposition(): Promise<string> {
    return this.registry.metrics();
  }

  exchange(route: RouteLabels | undefined, status: number, upstreamSeconds: number | undefined): void {
    let children = this.unrouted;
    if (route !== undefined) {
      const bound = this.children.get(route);
      if (bound !== undefined) children = bound;
      else this.children.set(route, (children = this.bind(route.site, route.version ?? '')));
    }
    let counter = children.byStatus.get(status);
    if (counter === undefined) {
      counter = this.requests.labels({ site: children.site, version: children.version, status: String(status) });
      children.byStatus.set(status, counter);
    }
    counter.inc();
    if (upstreamSeconds !== undefined) children.response.observe(upstreamSeconds);
  }

  /** Where `proximation_storage_up` reads whether the storage is reachable, at each scrape. */
  storageSource(reachable: () => boolean): void {
    this.storageReachable = reachable;
  }

  certificateServed(name: string, notAfter: Date): void {
    this.expiries.set(name, notAfter);
  }

  certificateRemoved(name: string): void {
    this.expiries.delete(name);
  }

  limitHit(limit: Limit): void {
    this.limitHits.get(limit)!.inc();
  }

  renewal(result: RenewalResult): void {
    this.renewals.inc({ result });
  }

  private bind(site: string, version: string): RouteChildren {
    return { byStatus: new Map(), response: this.responseSeconds.labels({ site, version }), site, version };
  }
}
