/**
 * Applies a change that may send traffic to new upstreams only after they pass a health check, even
 * while other writers change the same table. The request is plain data, `{ change, healthCheck? }`
 * (RoutingChangeRequest, with its zod schema for edges that receive it), so it can be applied where the
 * table is written or sent to the proxy's admin API, which then runs the check itself: health before
 * activation is judged from where the traffic will flow.
 *
 * `applyChangeRequest` without `healthCheck` is one `store.update`. With it (only for registerVersion
 * and activateVersion, the operations that take a TrafficGuard; others throw ERR_INVALID_ARGUMENT, as
 * does a change that brings its own guard.checkedUpstreams), it reads the table and tries the change on
 * it (so a change that would fail anyway, such as an unknown version, fails before any check), checks
 * the upstreams it would newly send traffic to (`upstreamsGainingTraffic`), then sends the change with a
 * guard listing what passed. The guard is evaluated where the table is changed, on the current table:
 * if another writer added upstreams meanwhile (ERR_UNCHECKED_UPSTREAMS), it re-reads the table, checks
 * the new ones and tries again, up to HEALTH_GATE_ROUNDS times (then ERR_UPSTREAMS_CHANGING).
 * A failed check throws HealthCheckFailedError (ERR_HEALTH_CHECK_FAILED) naming the change, what keeps
 * serving and each failed upstream; the change's own errors (such as ERR_SUPERSEDED) are thrown as they
 * are; an aborted `signal` throws its reason before the change is sent. In every such case the change
 * was not applied. An `observer` is told when each check starts and each attempt's result (what a
 * CLI shows while it waits); the store may tell it about lock waits.
 */
import * as z from 'zod';
import { ProximationError, isProximationError } from './errors.js';
import { HealthCheckFailedError, checkUpstreams, healthCheckFailed, isHealthCheckPath } from './health-check.js';
import type { HealthCheckOptions, UpstreamHealth } from './health-check.js';
import type { LockWait } from './lock.js';
import type { RoutingTableUpdate } from './routes-file.js';
import { findSite, routingTableChangeSchema, upstreamsGainingTraffic } from './routing-table.js';
import type { RoutingTable, RoutingTableChange } from './routing-table.js';

export const HEALTH_GATE_ROUNDS = 5;
/** The longest health check a request may ask for. */
export const MAX_HEALTH_TIMEOUT_MS = 3_600_000;

export const routingChangeRequestSchema = z
  .strictObject({
    change: routingTableChangeSchema,
    healthCheck: z
      .strictObject({
        path: z.string().refine(isHealthCheckPath, 'must be a path starting with a single "/", such as /healthz (a query is allowed; no spaces or "#")'),
        timeoutMs: z.int().min(1, 'must be at least 1').max(MAX_HEALTH_TIMEOUT_MS, `must be at most ${MAX_HEALTH_TIMEOUT_MS} (1h)`),
      })
      .readonly()
      .optional(),
  })
  .readonly();
export type RoutingChangeRequest = z.output<typeof routingChangeRequestSchema>;

/** Where the table is read and changed atomically; see RoutesTarget in deploy for the full contract. */
export interface RoutingTableStore {
  read(): Promise<RoutingTable>;
  update(change: RoutingTableChange): Promise<RoutingTableUpdate>;
}

export interface RoutingChangeResult extends RoutingTableUpdate {
  /** The upstreams the health check found healthy, in the order checked; empty without a check. */
  readonly healthChecked: readonly string[];
}

export interface ChangeRequestOptions {
  /** Who runs the health check, for the upstreams' logs. */
  readonly userAgent?: string;
  /** Stops before the change is sent (the one who asked went away). */
  readonly signal?: AbortSignal;
  /** Told what the request waits for, for progress output; its methods must not throw. */
  readonly observer?: ChangeObserver;
}

/** What a change request waits for while it runs: health checks and (in file mode) the table's lock. */
export interface ChangeObserver {
  /** A health check of `upstreams` began (one per round of the gate). */
  healthCheckStarted?(upstreams: readonly string[], health: HealthCheckOptions): void;
  /** One attempt on one upstream finished. */
  healthAttempt?(result: UpstreamHealth): void;
  /** The table's lock is held by another writer. */
  lockWait?(wait: LockWait): void;
}

type GuardedChange = Extract<RoutingTableChange, { op: 'registerVersion' | 'activateVersion' }>;

export async function applyChangeRequest(
  store: RoutingTableStore,
  request: RoutingChangeRequest,
  options: ChangeRequestOptions = {},
): Promise<RoutingChangeResult> {
  const { change, healthCheck } = request;
  if (healthCheck === undefined) {
    options.signal?.throwIfAborted();
    return { ...(await store.update(change)), healthChecked: [] };
  }
  if (change.op !== 'registerVersion' && change.op !== 'activateVersion') {
    throw new ProximationError(
      'ERR_INVALID_ARGUMENT',
      `A health check applies to registerVersion and activateVersion only, not to ${change.op}; send the change without healthCheck.`,
    );
  }
  if (change.guard?.checkedUpstreams !== undefined) {
    throw new ProximationError(
      'ERR_INVALID_ARGUMENT',
      'A change sent with healthCheck must not list guard.checkedUpstreams: the health check decides which upstreams passed.',
    );
  }
  const health: HealthCheckOptions = { ...healthCheck, ...(options.userAgent === undefined ? {} : { userAgent: options.userAgent }) };
  const checked: string[] = [];
  let table = await store.read();
  for (let round = 1; ; round++) {
    const unchecked = upstreamsGainingTraffic(table, change).filter((u) => !checked.includes(u));
    if (unchecked.length > 0) {
      options.observer?.healthCheckStarted?.(unchecked, health);
      const results = await checkUpstreams(unchecked, health, options.observer?.healthAttempt?.bind(options.observer));
      if (results.some((r) => !r.healthy)) throw unhealthy(table, change, results, health);
      checked.push(...unchecked);
    }
    options.signal?.throwIfAborted();
    try {
      return { ...(await store.update(withCheckedUpstreams(change, checked))), healthChecked: checked };
    } catch (err) {
      if (!isProximationError(err, 'ERR_UNCHECKED_UPSTREAMS')) throw err;
      if (round === HEALTH_GATE_ROUNDS) {
        throw new ProximationError(
          'ERR_UPSTREAMS_CHANGING',
          `${err.message} They changed ${HEALTH_GATE_ROUNDS} times while being checked; try again once other deploys have finished.`,
        );
      }
    }
    table = await store.read();
  }
}

function withCheckedUpstreams(change: GuardedChange, checkedUpstreams: readonly string[]): GuardedChange {
  return { ...change, guard: { ...change.guard, checkedUpstreams } };
}

/** The failure as the change's sender should read it: what was not done, and what keeps serving. */
function unhealthy(table: RoutingTable, change: GuardedChange, results: readonly UpstreamHealth[], health: HealthCheckOptions): HealthCheckFailedError {
  const site = findSite(table, change.site);
  const adding = site.activeVersion === change.version;
  const name = `${site.name}/${change.version}`;
  const serving =
    site.activeVersion === null ? `site ${site.name} has no active version` : `${site.name}/${site.activeVersion} keeps serving${adding ? ' on the upstreams it had' : ''}`;
  return healthCheckFailed(
    adding ? `Did not add upstreams to ${name}, the active version` : `Did not activate ${name}`,
    results,
    health,
    `Nothing changed: ${serving}. Make the upstreams answer GET ${health.path} with a 2xx or 3xx status, then send the change again.`,
  );
}
