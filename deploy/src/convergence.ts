/**
 * Convergence: a command that changes the routing table (`register`, `activate`, `rollback`,
 * `deregister`) is done once every live proxy instance serves the table it wrote, not when the file is
 * written. The flags (`--no-wait`, `--converge-timeout D`) and the wait are here, once, for all of them.
 *
 * What it guarantees:
 * - `convergenceFromFlags` checks the flags (usage errors, before any change is made).
 * - `convergedOutput` waits, unless --no-wait, until every live instance (by its heartbeat, through
 *   `RoutesTarget.status`: the directory in file mode, GET /api/status in API mode) reports a
 *   generation at or past the one written (a later one contains the change too), then resolves with the
 *   command's output, which then says how many instances confirmed (JSON: `convergence`). An instance
 *   whose heartbeat expires while it is waited for (three periods, fleet-status.ts) leaves the fleet and
 *   is no longer waited for. With no live instance at all it does not wait: it says that nobody
 *   confirmed, and exits 0 (a proxy that starts later loads the table as it is).
 * - After the timeout (default 30 s) it rejects with ERR_NOT_CONVERGED (exit 1), naming each lagging
 *   instance with the generation it serves and the age of its heartbeat; the change stays made.
 * How late it sees a change: instances write their heartbeat as soon as they serve a new table, and
 * this polls every 250 ms, so it normally returns one routing-table poll (1 s by default) after the write.
 */
import { setTimeout as delay } from 'node:timers/promises';
import { ProximationError, formatDuration, type FleetStatus } from '@proximation/shared';
import { durationFlag, output, plural, usageError } from './command-line.js';
import { progressFor, type ProgressOutput } from './progress.js';
import type { RoutesTarget } from './routes-target.js';

export const CONVERGE_OPTIONS = { 'no-wait': { type: 'boolean' }, 'converge-timeout': { type: 'string' } } as const;

export const CONVERGE_OPTIONS_HELP = `  --no-wait              return once the table is written, without waiting for the proxies
  --converge-timeout <duration>
                         how long to wait for every live proxy instance to serve the change
                         (default 30s); after it, exit 1 naming the instances that lag (the change
                         stays made)`;

/** What --json adds: the instances that confirmed, or null with --no-wait. */
export const CONVERGE_JSON_HELP = '"convergence" ({"generation", "confirmed", "instances": [ids], "waitedMs"} or null with --no-wait)';

const DEFAULT_TIMEOUT_MS = 30_000;
const POLL_MS = 250;

export type ConvergeLimit = { readonly wait: false } | { readonly wait: true; readonly timeoutMs: number };

interface ConvergeFlags {
  'no-wait'?: boolean | undefined;
  'converge-timeout'?: string | undefined;
  json?: boolean | undefined;
}

export function convergenceFromFlags(values: ConvergeFlags, command: string): ConvergeLimit {
  const timeout = values['converge-timeout'];
  if (values['no-wait'] === true) {
    if (timeout !== undefined) throw usageError('Give either --no-wait or --converge-timeout, not both.', command);
    return { wait: false };
  }
  return { wait: true, timeoutMs: timeout === undefined ? DEFAULT_TIMEOUT_MS : durationFlag(timeout, '--converge-timeout', command) };
}

export interface Convergence {
  generation: number;
  confirmed: number;
  instances: string[];
  waitedMs: number;
}

/**
 * The command's output (`data` as JSON with `convergence` added, else `text` with how many instances
 * confirmed) once every live instance serves `generation`; see the module header.
 */
export async function convergedOutput(
  values: ConvergeFlags,
  limit: ConvergeLimit,
  target: RoutesTarget,
  generation: number,
  data: object,
  text: string,
  out: ProgressOutput | undefined,
): Promise<string> {
  if (!limit.wait) return output(values.json, { ...data, convergence: null }, text);
  const progress = progressFor(out, values.json, `generation ${generation}`);
  let convergence: Convergence;
  try {
    convergence = await waitForGeneration(target, generation, limit.timeoutMs, text, (lagging) => progress?.converging(generation, lagging, limit.timeoutMs));
  } finally {
    progress?.clear();
  }
  const confirmed =
    convergence.confirmed === 0
      ? `no live proxy instance to confirm it (no heartbeat at ${target.location}); a proxy that starts loads it`
      : `served by ${convergence.confirmed === 1 ? 'the one live proxy instance' : `all ${convergence.confirmed} live proxy instances`}`;
  return output(values.json, { ...data, convergence }, `${text}; ${confirmed}`);
}

async function waitForGeneration(
  target: RoutesTarget,
  generation: number,
  timeoutMs: number,
  done: string,
  waiting: (lagging: string[]) => void,
): Promise<Convergence> {
  const start = Date.now();
  for (;;) {
    const status = await target.status();
    const lagging = status.instances.filter((i) => i.routesGeneration < generation);
    const waitedMs = Date.now() - start;
    if (lagging.length === 0) return { generation, confirmed: status.instances.length, instances: status.instances.map((i) => i.id), waitedMs };
    if (waitedMs >= timeoutMs) {
      throw new ProximationError(
        'ERR_NOT_CONVERGED',
        `${done}; but after ${formatDuration(timeoutMs)}, ${lagging.length} of ${plural(status.instances.length, 'live proxy instance')} ` +
          `still serve an older table: ${laggingPhrase(status, lagging)}. The change stays made; they serve it once they load it. ` +
          'Check that they run and can read the routing table ("deploy status"), or wait longer with --converge-timeout.',
      );
    }
    waiting(lagging.map((i) => i.id));
    await delay(POLL_MS);
  }
}

function laggingPhrase(status: FleetStatus, lagging: FleetStatus['instances']): string {
  const now = Date.parse(status.generatedAt);
  return lagging
    .map((i) => `${i.id} (generation ${i.routesGeneration}, heartbeat ${formatDuration(Math.max(0, Math.round((now - Date.parse(i.lastSeen)) / 1000) * 1000))} old)`)
    .join(', ');
}
