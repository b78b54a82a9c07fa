/**
 * Renders the medians as a Markdown table for the README (one column per proxy, one row per metric,
 * plus proximation's ratios to nginx and Caddy when all three were measured) and the target check as a
 * list. Missing values print as `-`; rows with errors say how many. Pure functions; throws nothing.
 */
import { IDLE_SECONDS } from './rounds.js';
import type { Scenario } from './scenarios.js';
import type { ProxySummary, ScenarioSummary, TargetCheck } from './summary.js';

export interface TableKeys {
  readonly subject: string;
  readonly nginx: string;
  readonly caddy: string;
}

function formatRate(value: number): string {
  return value >= 1000 ? `${(value / 1000).toFixed(1)}k` : value.toFixed(0);
}

function formatMs(value: number): string {
  return value < 10 ? value.toFixed(2) : value.toFixed(1);
}

function formatRatio(value: number): string {
  return Number.isFinite(value) ? `${value.toFixed(2)}×` : '-';
}

interface Metric {
  readonly name: string;
  readonly value: (p: ProxySummary) => number | undefined;
  readonly format: (v: number) => string;
  readonly errors?: (p: ProxySummary) => number;
  /** Context rather than a result: no ratio is shown. */
  readonly contextOnly?: true;
}

function scenarioMetrics(scenario: Scenario): Metric[] {
  const of = (pick: (s: ScenarioSummary) => number) => (p: ProxySummary) => {
    const s = p.scenarios[scenario.key];
    return s === undefined ? undefined : pick(s);
  };
  return [
    {
      name: `${scenario.label}, req/s`,
      value: of((s) => s.reqPerSec),
      format: formatRate,
      errors: (p) => p.scenarios[scenario.key]?.errors ?? 0,
    },
    { name: `${scenario.label}, p99 ms`, value: of((s) => s.p99Ms), format: formatMs },
    { name: `${scenario.label}, proxy CPU µs/request`, value: of((s) => s.cpuUsPerRequest), format: (v) => v.toFixed(1) },
  ];
}

interface Column {
  readonly heading: string;
  cell(metric: Metric): string;
}

function proxyColumn(proxy: ProxySummary): Column {
  return {
    heading: proxy.label,
    cell: (metric) => {
      const value = metric.value(proxy);
      if (value === undefined || Number.isNaN(value)) return '-';
      const errors = metric.errors?.(proxy) ?? 0;
      return errors > 0 ? `${metric.format(value)} (${errors} errors)` : metric.format(value);
    },
  };
}

function ratioColumn(subject: ProxySummary, base: ProxySummary, baseName: string): Column {
  return {
    heading: `${subject.label} ÷ ${baseName}`,
    cell: (metric) => {
      if (metric.contextOnly === true) return '';
      const own = metric.value(subject);
      const other = metric.value(base);
      return own === undefined || other === undefined ? '-' : formatRatio(own / other);
    },
  };
}

/** How the proxies ran: the table's corner heading, and what "others" means in its last row. */
export interface TableSetting {
  readonly placement: string;
  readonly othersRow: string;
}

export const PER_CORE: TableSetting = { placement: 'proxy pinned to 1 core', othersRow: "CPU used by other processes on the proxy's core, %" };

export function renderTable(
  summaries: readonly ProxySummary[],
  scenarios: readonly Scenario[],
  keys: TableKeys,
  rounds: number,
  setting: TableSetting = PER_CORE,
): string {
  const subject = summaries.find((s) => s.key === keys.subject);
  const nginx = summaries.find((s) => s.key === keys.nginx);
  const caddy = summaries.find((s) => s.key === keys.caddy);
  const metrics: Metric[] = [
    ...scenarios.flatMap(scenarioMetrics),
    { name: 'RSS after the runs, MiB', value: (p) => p.rssAfterRunsMiB ?? undefined, format: (v) => v.toFixed(0) },
    {
      name: `RSS ${IDLE_SECONDS} s after the last round (idle), MiB`,
      value: (p) => p.rssAfterIdleMiB ?? undefined,
      format: (v) => v.toFixed(0),
    },
    {
      name: setting.othersRow,
      value: (p) => p.otherOnProxyCorePercent,
      format: (v) => v.toFixed(0),
      contextOnly: true,
    },
  ];
  const columns: Column[] =
    subject !== undefined && nginx !== undefined && caddy !== undefined
      ? [
          proxyColumn(subject),
          ratioColumn(subject, nginx, 'nginx'),
          ratioColumn(subject, caddy, 'Caddy'),
          ...summaries.filter((s) => s !== subject).map(proxyColumn),
        ]
      : summaries.map(proxyColumn);
  const lines = [
    `| medians of ${rounds} round${rounds === 1 ? '' : 's'}, ${setting.placement} | ${columns.map((c) => c.heading).join(' | ')} |`,
    `|---|${columns.map(() => '---').join('|')}|`,
    // A measure no proxy has (memory after the idle wait, when the run skipped it) gets no row.
    ...metrics
      .filter((m) => summaries.some((p) => m.value(p) !== undefined))
      .map((m) => `| ${m.name} | ${columns.map((c) => c.cell(m)).join(' | ')} |`),
  ];
  const scenarioLabel = (key: string): string => scenarios.find((s) => s.key === key)?.label ?? 'the proxy itself';
  const failures = summaries.flatMap((s) =>
    Object.entries(s.failures).map(
      ([key, reason]) => `- ${s.label}, ${scenarioLabel(key)}: failed (${reason.split('\n')[0]}); see the JSON results.`,
    ),
  );
  return [...lines, ...(failures.length > 0 ? ['', ...failures] : [])].join('\n');
}

function formatValue(value: number | null): string {
  if (value === null) return '-';
  return value >= 1000 ? formatRate(value) : value.toFixed(1);
}

export function renderTargets(targets: readonly TargetCheck[], subjectLabel: string): string {
  return [
    `Targets for ${subjectLabel} (and, for scale, what the Node references measured):`,
    ...targets.map((t) => {
      const verdict = t.pass === null ? 'NOT MEASURED' : t.pass ? 'PASS' : 'FAIL';
      const floors = t.floors.map((f) => `${f.label}: ${formatValue(f.value)}`).join('; ');
      return `- ${verdict}: ${t.description} (measured ${formatValue(t.measured)}, limit ${formatValue(t.limit)}${floors === '' ? '' : `; ${floors}`})`;
    }),
  ].join('\n');
}
