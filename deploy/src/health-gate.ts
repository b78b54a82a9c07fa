/**
 * Applies a change that may send traffic to new upstreams only after they pass a health check, even
 * while other deploys change the same table.
 *
 * `applyHealthGated` first tries the change on the table it has (so a change that would fail anyway,
 * such as an unknown version, fails before any check), then checks the upstreams `pending(table)`
 * names (those the change would newly send traffic to), then sends the change with a TrafficGuard
 * listing what passed. The guard is evaluated where the table is changed, on the current table: if
 * another writer added upstreams meanwhile (ERR_UNCHECKED_UPSTREAMS), it re-reads the table, checks
 * the new ones and tries again, up to MAX_ROUNDS times (then ERR_UPSTREAMS_CHANGING).
 * It throws `unhealthy(results)` when a check fails, and the change's own errors (such as
 * ERR_SUPERSEDED) as they are; in every case the change was not applied.
 */
import { ProximationError, applyRoutingTableChange, isProximationError } from '@proximation/shared';
import type { RoutingTable, RoutingTableChange, RoutingTableUpdate, TrafficGuard } from '@proximation/shared';
import { checkUpstreams } from './health-check.js';
import type { HealthCheckOptions, UpstreamHealth } from './health-check.js';
import type { RoutesTarget } from './routes-target.js';

const MAX_ROUNDS = 5;

export interface HealthGated {
  readonly update: RoutingTableUpdate;
  /** The upstreams this call checked and found healthy, in the order checked. */
  readonly checked: readonly string[];
}

export async function applyHealthGated(
  target: RoutesTarget,
  table: RoutingTable,
  change: (guard: TrafficGuard) => RoutingTableChange,
  pending: (table: RoutingTable) => readonly string[],
  health: HealthCheckOptions,
  unhealthy: (results: readonly UpstreamHealth[]) => ProximationError,
): Promise<HealthGated> {
  const checked: string[] = [];
  let current = table;
  for (let round = 1; ; round++) {
    applyRoutingTableChange(current, change({}), new Date());
    const unchecked = pending(current).filter((u) => !checked.includes(u));
    if (unchecked.length > 0) {
      const results = await checkUpstreams(unchecked, health);
      if (results.some((r) => !r.healthy)) throw unhealthy(results);
      checked.push(...unchecked);
    }
    try {
      return { update: await target.update(change({ checkedUpstreams: checked })), checked };
    } catch (err) {
      if (!isProximationError(err, 'ERR_UNCHECKED_UPSTREAMS')) throw err;
      if (round === MAX_ROUNDS) {
        throw new ProximationError('ERR_UPSTREAMS_CHANGING', `${err.message} They changed ${MAX_ROUNDS} times while being checked; try again once other deploys have finished.`);
      }
    }
    current = await target.read();
  }
}
