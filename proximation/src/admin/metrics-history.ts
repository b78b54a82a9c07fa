/**
 * The last 15 minutes of each site's traffic, for the status page's plots: every `intervalMs` it reads
 * the Prometheus exposition (the same text GET /metrics answers; with workers the primary's, which sums
 * theirs) and keeps, per site, the request rate and the upstream latency p50/p99 of that interval.
 *
 * Bounded: at most `samples` points per site (15 min at the default 5 s), and a site whose counters
 * vanish from the exposition is dropped with its history. A counter that goes down (a worker restarted)
 * starts a new baseline instead of giving a negative rate. A failed read is skipped: the history only
 * shows a gap. Latency quantiles are the upper bound of the histogram bucket the quantile falls in (as
 * Prometheus' histogram_quantile would at the bucket edge), null for an interval without responses.
 */

export interface SitePoint {
  /** Unix milliseconds at the end of the interval. */
  at: number;
  /** Requests answered in the interval. */
  requests: number;
  requestsPerSecond: number;
  /** Responses with a 5xx status (the proxy's own or the upstream's). */
  errorsPerSecond: number;
  p50Seconds: number | null;
  p99Seconds: number | null;
}

interface Totals {
  requests: number;
  errors: number;
  /** Cumulative count per bucket upper bound (`le`), summed over versions. */
  buckets: Map<number, number>;
}

const SAMPLE_LINE = /^([a-zA-Z_:][\w:]*)\{([^}]*)\}\s+(\S+)/;
const LABEL = /(\w+)="((?:[^"\\]|\\.)*)"/g;

/** Per site: requests_total summed over versions and statuses, and the response-time buckets. */
export function siteTotals(exposition: string): Map<string, Totals> {
  const totals = new Map<string, Totals>();
  const of = (site: string): Totals => {
    let found = totals.get(site);
    if (found === undefined) totals.set(site, (found = { requests: 0, errors: 0, buckets: new Map() }));
    return found;
  };
  for (const line of exposition.split('\n')) {
    const match = SAMPLE_LINE.exec(line);
    if (match === null) continue;
    const [, name, labelText, valueText] = match;
    if (name !== 'proximation_requests_total' && name !== 'proximation_upstream_response_seconds_bucket') continue;
    const labels = new Map([...labelText!.matchAll(LABEL)].map((m) => [m[1]!, m[2]!]));
    const site = labels.get('site');
    const value = Number(valueText);
    if (site === undefined || !Number.isFinite(value)) continue;
    const entry = of(site);
    if (name === 'proximation_requests_total') {
      entry.requests += value;
      if (labels.get('status')?.startsWith('5') === true) entry.errors += value;
      continue;
    }
    const le = labels.get('le') === '+Inf' ? Infinity : Number(labels.get('le'));
    entry.buckets.set(le, (entry.buckets.get(le) ?? 0) + value);
  }
  return totals;
}

function quantile(deltas: [number, number][], q: number): number | null {
  const total = deltas.at(-1)?.[1] ?? 0;
  if (total <= 0) return null;
  const found = deltas.find(([, count]) => count >= q * total);
  if (found === undefined) return null;
  // Past the last finite bucket the answer is only "more than the last bound": say that bound.
  return Number.isFinite(found[0]) ? found[0] : (deltas.at(-2)?.[0] ?? null);
}

export interface MetricsHistoryOptions {
  exposition: () => Promise<string>;
  intervalMs?: number;
  samples?: number;
}

export class MetricsHistory {
  private readonly points = new Map<string, SitePoint[]>();
  private previous: { at: number; totals: Map<string, Totals> } | undefined;
  private timer: NodeJS.Timeout | undefined;
  private readonly intervalMs: number;
  private readonly samples: number;

  constructor(private readonly options: MetricsHistoryOptions) {
    this.intervalMs = options.intervalMs ?? 5000;
    this.samples = options.samples ?? Math.ceil((15 * 60_000) / this.intervalMs);
  }

  start(): void {
    if (this.timer !== undefined) return;
    void this.sample();
    this.timer = setInterval(() => void this.sample(), this.intervalMs);
    this.timer.unref();
  }

  stop(): void {
    clearInterval(this.timer);
    this.timer = undefined;
  }

  /** Reads the exposition once and appends a point per site (none on the first call: no baseline yet). */
  async sample(now = Date.now()): Promise<void> {
    let totals: Map<string, Totals>;
    try {
      totals = siteTotals(await this.options.exposition());
    } catch {
      return;
    }
    const before = this.previous;
    this.previous = { at: now, totals };
    for (const site of this.points.keys()) if (!totals.has(site)) this.points.delete(site);
    if (before === undefined) return;
    const seconds = Math.max((now - before.at) / 1000, 0.001);
    for (const [site, current] of totals) {
      const last = before.totals.get(site);
      const base = last === undefined || current.requests < last.requests ? { requests: 0, errors: 0, buckets: new Map<number, number>() } : last;
      const deltas = [...current.buckets]
        .map(([le, count]): [number, number] => [le, count - (base.buckets.get(le) ?? 0)])
        .sort((a, b) => a[0] - b[0]);
      const list = this.points.get(site) ?? [];
      list.push({
        at: now,
        requests: current.requests - base.requests,
        requestsPerSecond: (current.requests - base.requests) / seconds,
        errorsPerSecond: (current.errors - base.errors) / seconds,
        p50Seconds: quantile(deltas, 0.5), p99Seconds: quantile(deltas, 0.99),
      });
      if (list.length > this.samples) list.splice(0, list.length - this.samples);
      this.points.set(site, list);
    }
  }

  /** The request and 5xx rates of the last interval, summed over all sites (this instance's, or its workers'). */
  latestRates(): { requestsPerSecond: number; errorsPerSecond: number } {
    let requestsPerSecond = 0;
    let errorsPerSecond = 0;
    for (const points of this.points.values()) {
      const last = points.at(-1);
      if (last === undefined || last.at !== this.previous?.at) continue;
      requestsPerSecond += last.requestsPerSecond;
      errorsPerSecond += last.errorsPerSecond;
    }
    return { requestsPerSecond, errorsPerSecond };
  }

  history(site: string): readonly SitePoint[] {
    return this.points.get(site) ?? [];
  }
}
