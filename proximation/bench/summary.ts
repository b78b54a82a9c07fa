/**
 * Turns the samples of all rounds into medians per proxy and scenario, and checks proximation against
 * the project's targets: HTTPS keep-alive req/s >= 2x Caddy's, CPU per keep-alive request <= 1.5x
 * nginx's, HTTP/2 req/s >= 2x Caddy's, RSS after the runs <= 80 MiB. A target whose inputs were not
 * measured has `pass: null`. Pure functions; throws nothing.
 */
import type { Sample } from './measure.js';

/** Each measure is the median of the rounds' samples. */
export interface ScenarioSummary
  extends Pick<Sample, 'reqPerSec' | 'p99Ms' | 'cpuUsPerRequest' | 'proxyCpuPercent' | 'otherOnProxyCorePercent' | 'rssMiB'> {
  /** Errors summed over all rounds (any error makes the row suspect). */
  readonly errors: number;
  readonly samples: readonly Sample[];
}

export interface ProxySummary {
  readonly key: string;
  readonly label: string;
  /** Keyed by scenario key; scenarios that do not apply or were not reached are absent. */
  readonly scenarios: Readonly<Record<string, ScenarioSummary>>;
  /** Median over all its runs of the CPU others used on the proxy's core: the noise the proxy ran in. */
  readonly otherOnProxyCorePercent: number;
  /** Resident memory right after the proxy's last run of the last round. */
  readonly rssAfterRunsMiB: number | null;
  /** Resident memory after the last round and `IDLE_SECONDS` without load. */
  readonly rssAfterIdleMiB: number | null;
  /** Scenario key, or `*` for the whole proxy, to why it stopped being measured. */
  readonly failures: Readonly<Record<string, string>>;
}

export interface ProxyRecord {
  readonly key: string;
  readonly label: string;
  readonly samples: ReadonlyMap<string, readonly Sample[]>;
  readonly rssAfterRuns: number | null;
  readonly rssAfterIdle: number | null;
  readonly failures: Readonly<Record<string, string>>;
}

export interface TargetCheck {
  readonly description: string;
  readonly measured: number | null;
  readonly limit: number | null;
  readonly pass: boolean | null;
  /** The same measure for each reference (see run.ts), by label: what any Node server or proxy starts from. */
  readonly floors: readonly { readonly label: string; readonly value: number | null }[];
}

export function median(values: readonly number[]): number {
  const sorted = values.filter((v) => !Number.isNaN(v)).sort((a, b) => a - b);
  if (sorted.length === 0) return Number.NaN;
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1
    ? (sorted[mid] as number)
    : ((sorted[mid - 1] as number) + (sorted[mid] as number)) / 2;
}

function summarizeScenario(samples: readonly Sample[]): ScenarioSummary {
  const of = (pick: (s: Sample) => number): number => median(samples.map(pick));
  return {
    reqPerSec: of((s) => s.reqPerSec),
    p99Ms: of((s) => s.p99Ms),
    cpuUsPerRequest: of((s) => s.cpuUsPerRequest),
    proxyCpuPercent: of((s) => s.proxyCpuPercent),
    otherOnProxyCorePercent: of((s) => s.otherOnProxyCorePercent),
    rssMiB: of((s) => s.rssMiB),
    errors: samples.reduce((sum, s) => sum + s.errors, 0),
    samples,
  };
}

export function summarizeProxy(record: ProxyRecord): ProxySummary {
  const scenarios: Record<string, ScenarioSummary> = {};
  for (const [key, samples] of record.samples) if (samples.length > 0) scenarios[key] = summarizeScenario(samples);
  return {
    key: record.key,
    label: record.label,
    scenarios,
    otherOnProxyCorePercent: median([...record.samples.values()].flat().map((s) => s.otherOnProxyCorePercent)),
    rssAfterRunsMiB: record.rssAfterRuns,
    rssAfterIdleMiB: record.rssAfterIdle,
    failures: record.failures,
  };
}

function check(
  description: string,
  measured: number | undefined,
  limit: number | undefined,
  atLeast: boolean,
  floors: readonly { readonly label: string; readonly value: number | undefined }[],
): TargetCheck {
  const known = floors.map(({ label, value }) => ({ label, value: value === undefined || Number.isNaN(value) ? null : value }));
  if (measured === undefined || limit === undefined || Number.isNaN(measured) || Number.isNaN(limit)) {
    return { description, measured: measured ?? null, limit: limit ?? null, pass: null, floors: known };
  }
  return { description, measured, limit, pass: atLeast ? measured >= limit : measured <= limit, floors: known };
}

export function checkTargets(
  summaries: readonly ProxySummary[],
  keys: { readonly subject: string; readonly nginx: string; readonly caddy: string; readonly floors: readonly string[] },
  scenarioKeys: { readonly keepAlive: string; readonly http2: string },
): TargetCheck[] {
  const find = (key: string): ProxySummary | undefined => summaries.find((s) => s.key === key);
  const subject = find(keys.subject);
  const nginx = find(keys.nginx);
  const caddy = find(keys.caddy);
  const floors = keys.floors.map(find).filter((f): f is ProxySummary => f !== undefined);
  const metric = (p: ProxySummary | undefined, scenario: string, pick: (s: ScenarioSummary) => number) => {
    const s = p?.scenarios[scenario];
    return s === undefined ? undefined : pick(s);
  };
  const times = (value: number | undefined, factor: number) => (value === undefined ? undefined : value * factor);
  const scenarioCheck = (
    description: string,
    scenario: string,
    pick: (s: ScenarioSummary) => number,
    base: ProxySummary | undefined,
    factor: number,
    atLeast: boolean,
  ) =>
    check(
      description,
      metric(subject, scenario, pick),
      times(metric(base, scenario, pick), factor),
      atLeast,
      floors.map((f) => ({ label: f.label, value: metric(f, scenario, pick) })),
    );
  return [
    scenarioCheck('HTTPS keep-alive req/s >= 2x Caddy', scenarioKeys.keepAlive, (s) => s.reqPerSec, caddy, 2, true),
    scenarioCheck(
      'CPU µs per HTTPS keep-alive request <= 1.5x nginx',
      scenarioKeys.keepAlive,
      (s) => s.cpuUsPerRequest,
      nginx,
      1.5,
      false,
    ),
    scenarioCheck('HTTP/2 req/s >= 2x Caddy', scenarioKeys.http2, (s) => s.reqPerSec, caddy, 2, true),
    check(
      'RSS after the runs <= 80 MiB',
      subject?.rssAfterRunsMiB ?? undefined,
      80,
      false,
      floors.map((f) => ({ label: f.label, value: f.rssAfterRunsMiB ?? undefined })),
    ),
  ];
}

/**
 * The whole-machine targets (issue 15): with a worker per CPU, req/s >= 1.5x Caddy's on HTTPS keep-alive
 * and HTTP/2 and >= Caddy's on new connections; against one worker on the same machine, >= 1.6x the
 * req/s with CPU per request within 10% of one worker's, in every scenario. `references` are shown
 * beside each (nginx with a worker per CPU).
 */
export function checkMachineTargets(
  summaries: readonly ProxySummary[],
  keys: { readonly subject: string; readonly oneWorker: string; readonly caddy: string; readonly references: readonly string[] },
  scenarioKeys: { readonly keepAlive: string; readonly http2: string; readonly newConnection: string },
): TargetCheck[] {
  const find = (key: string): ProxySummary | undefined => summaries.find((s) => s.key === key);
  const subject = find(keys.subject);
  const oneWorker = find(keys.oneWorker);
  const caddy = find(keys.caddy);
  const references = keys.references.map(find).filter((f): f is ProxySummary => f !== undefined);
  const value = (p: ProxySummary | undefined, scenario: string, pick: (s: ScenarioSummary) => number): number | undefined => {
    const s = p?.scenarios[scenario];
    return s === undefined ? undefined : pick(s);
  };
  const against = (description: string, scenario: string, pick: (s: ScenarioSummary) => number, base: ProxySummary | undefined, factor: number, atLeast: boolean) => {
    const limit = value(base, scenario, pick);
    return check(
      description,
      value(subject, scenario, pick),
      limit === undefined ? undefined : limit * factor,
      atLeast,
      references.map((r) => ({ label: r.label, value: value(r, scenario, pick) })),
    );
  };
  const rate = (s: ScenarioSummary): number => s.reqPerSec;
  const cpu = (s: ScenarioSummary): number => s.cpuUsPerRequest;
  const scenarios = [
    ['HTTPS keep-alive', scenarioKeys.keepAlive],
    ['HTTP/2', scenarioKeys.http2],
    ['new TLS connection per request', scenarioKeys.newConnection],
  ] as const;
  return [
    against('HTTPS keep-alive req/s >= 1.5x Caddy', scenarioKeys.keepAlive, rate, caddy, 1.5, true),
    against('HTTP/2 req/s >= 1.5x Caddy', scenarioKeys.http2, rate, caddy, 1.5, true),
    against('new TLS connection per request req/s >= Caddy', scenarioKeys.newConnection, rate, caddy, 1, true),
    ...scenarios.flatMap(([label, key]) => [
      against(`${label} req/s >= 1.6x one worker's`, key, rate, oneWorker, 1.6, true),
      against(`${label} CPU µs per request <= 1.1x one worker's`, key, cpu, oneWorker, 1.1, false),
    ]),
  ];
}
