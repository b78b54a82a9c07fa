/**
 * A change of the routing table (in its storage, routes-file.ts) with the members' leases in view, for every writer of the table
 * (deploy in file mode, the admin API): the lease records are read first, so the change can tell a live
 * member from an expired one (an address whose member expired may be taken by another identity), and
 * a change that writes also removes the members whose leases ran out (applyRoutingTableChange with a
 * clock). After such a write, the lease records of members that are gone and expired are deleted.
 *
 * The leases are read before the table's lock is taken: a renewal that lands in between is one for a
 * lease that had run out already, which the proxies had stopped routing to; its renewer joins again
 * (deploy run checks its membership every lease). Throws what updateRoutingTable and the
 * storage throw; a failure to delete an old lease record is not an error (the next write retries).
 */
import type { FleetStorage } from './fleet-storage.js';
import { clockFrom, memberKey, type MemberClock } from './members.js';
import { updateRoutingTable, type RoutesLocation, type RoutingTableUpdate, type RoutingTableUpdateOptions } from './routes-file.js';
import type { RoutingTable } from './routing-table.js';

export async function updateRoutingTableWithLeases(
  routes: RoutesLocation,
  storage: FleetStorage,
  change: (table: RoutingTable, clock: MemberClock) => RoutingTable,
  options?: RoutingTableUpdateOptions,
): Promise<RoutingTableUpdate> {
  const { records } = await storage.readLeases();
  const clock = clockFrom(records, Date.now());
  const result = await updateRoutingTable(routes.storage, routes.key, (table) => change(table, clock), options);
  if (result.changed) {
    const members = new Set(result.table.sites.flatMap((s) => s.versions.flatMap((v) => (v.members ?? []).map((m) => memberKey(s.name, v.name, m.upstream)))));
    const stale = records.filter((r) => !members.has(memberKey(r.site, r.version, r.upstream)) && Date.parse(r.renewedAt) + r.leaseMs <= clock.now);
    await Promise.all(stale.map((r) => storage.removeLease(r.site, r.version, r.upstream).catch(() => undefined)));
  }
  return result;
}
