/**
 * The routing table in the shared storage as a RoutesTarget: the file on the shared directory
 * (`--routes FILE`, `PROXIMATION_ROUTES`) or the table in Redis (`--storage redis://...`,
 * `PROXIMATION_STORAGE`), the same code on both (storage.ts in @proximation/shared). Reads validate the
 * table; updates run under the table's lock and write atomically, fenced by that lock (routes-file.ts),
 * so any number of deploy processes on any number of hosts can change it at once without losing a
 * change. Each update sees the members' lease records (member-update.ts), so it removes expired
 * members. Health checks run from this process. An applied change is added to the change log beside
 * the table (change-log.ts) with this command's user and host; failing to add it loses only that
 * history line, so it does not fail the command.
 *
 * `policy` is how the proxies on this table order certificates (for the wildcard rules), which deploy
 * cannot ask the storage: `issuancePolicyFromEnv` reads the proxies' own PROXIMATION_ISSUER and
 * PROXIMATION_ACME_CHALLENGE, with the proxies' defaults (the local CA, http-01), as deploy usually runs
 * where they run (the same task definition's environment); in API mode the proxy judges with its own.
 */
import {
  RedisStorage,
  SITE_CHALLENGES,
  applyChangeRequest,
  applyRoutingTableChange,
  describeKey,
  fleetStorageOf,
  readFleetStatus,
  readRoutingTable,
  recordRoutingChange,
  routesFileLocation,
  routesNotFound,
  updateRoutingTableWithLeases,
} from '@proximation/shared';
import type { IssuancePolicy, RoutesLocation, RoutingTableStore, SiteChallenge } from '@proximation/shared';
import { deployActor } from './actor.js';
import type { RoutesTarget } from './routes-target.js';

export function issuancePolicyFromEnv(env: NodeJS.ProcessEnv): IssuancePolicy {
  const challenge = env.PROXIMATION_ACME_CHALLENGE;
  return {
    issuer: env.PROXIMATION_ISSUER === 'acme' ? 'acme' : 'local',
    challenge: SITE_CHALLENGES.includes(challenge as SiteChallenge) ? (challenge as SiteChallenge) : 'http-01',
  };
}

/**
 * `origin` is where the table's place came from (`from --routes`, `from PROXIMATION_STORAGE`), for the
 * error when there is no table there: only adding a site creates a missing table (the result's
 * `created` says it did); every other command, reads included, fails with ERR_ROUTES_NOT_FOUND, so a
 * mistyped path (or key prefix) never starts a new table or reports an empty one.
 */
export function storageTarget(routes: RoutesLocation, policy: IssuancePolicy, origin: string): RoutesTarget {
  const location = describeKey(routes.storage, routes.key);
  const read = async () => {
    if ((await routes.storage.read(routes.key)) === undefined) throw routesNotFound(routes.storage, routes.key, origin, 'only "deploy site add" creates a new one');
    return readRoutingTable(routes.storage, routes.key);
  };
  const fleet = fleetStorageOf(routes);
  return {
    location,
    read,
    fleet,
    leases: async () => (await fleet.readLeases()).records,
    status: async () => (await readFleetStatus(routes, fleet)).status,
    async update(request, observer) {
      const store: RoutingTableStore = {
        read,
        update: (change) =>
          updateRoutingTableWithLeases(routes, fleet, (table, clock) => applyRoutingTableChange(table, change, new Date(), policy, clock), {
            create: change.op === 'addSite',
            origin,
            ...(observer?.lockWait === undefined ? {} : { onWait: (wait) => observer.lockWait?.(wait) }),
          }),
      };
      const result = await applyChangeRequest(store, request, { userAgent: 'proximation-deploy health check', ...(observer === undefined ? {} : { observer }) });
      if (result.changed) await recordRoutingChange(routes, result.table, request.change, { ...deployActor(), via: routes.storage instanceof RedisStorage ? 'redis' : 'file' }).catch(() => undefined);
      return result;
    },
  };
}

/** The routing table file at `path` as a target. */
export function fileTarget(path: string, policy: IssuancePolicy, origin: string): RoutesTarget {
  return storageTarget(routesFileLocation(path), policy, origin);
}
