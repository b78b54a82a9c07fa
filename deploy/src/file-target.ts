/**
 * The routing table file on the shared directory as a RoutesTarget (`--routes FILE`,
 * `PROXIMATION_ROUTES`): reads validate the file, updates run under the file's lease lock and write
 * atomically (see routes-file.ts in @proximation/shared), so any number of deploy processes on any
 * number of hosts can change it at once without losing a change. Each update sees the members' lease
 * records (member-update.ts), so it removes expired members. Health checks run from this process.
 * An applied change is added to the change log beside the file (change-log.ts) with this command's user
 * and host; failing to add it loses only that history line, so it does not fail the command.
 *
 * `policy` is how the proxies on this file order certificates (for the wildcard rules), which deploy
 * cannot ask a file: `issuancePolicyFromEnv` reads the proxies' own PROXIMATION_ISSUER and
 * PROXIMATION_ACME_CHALLENGE, with the proxies' defaults (the local CA, http-01), as deploy usually runs
 * where they run (the same task definition's environment); in API mode the proxy judges with its own.
 */
import {
  SITE_CHALLENGES,
  applyChangeRequest,
  applyRoutingTableChange,
  fileFleetStorage,
  fleetDirOf,
  readFileIfExists,
  readFleetStatus,
  readRoutingTableFile,
  recordRoutingChange,
  routesNotFound,
  updateRoutingTableWithLeases,
} from '@proximation/shared';
import type { IssuancePolicy, RoutingTableStore, SiteChallenge } from '@proximation/shared';
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
 * `origin` is where `path` came from (`from --routes`, `from PROXIMATION_ROUTES`), for the error when there
 * is no file there: only adding a site creates a missing table (the result's `created` says it did);
 * every other command, reads included, fails with ERR_ROUTES_NOT_FOUND, so a mistyped path never starts
 * a new table or reports an empty one.
 */
export function fileTarget(path: string, policy: IssuancePolicy, origin: string): RoutesTarget {
  const read = async () => {
    if ((await readFileIfExists(path)) === undefined) throw routesNotFound(path, origin, 'only "deploy site add" creates a new one');
    return readRoutingTableFile(path);
  };
  const fleet = fileFleetStorage(fleetDirOf(path));
  return {
    location: path,
    read,
    fleet,
    leases: async () => (await fleet.readLeases()).records,
    status: async () => (await readFleetStatus(path)).status,
    async update(request, observer) {
      const store: RoutingTableStore = {
        read,
        update: (change) =>
          updateRoutingTableWithLeases(path, fleet, (table, clock) => applyRoutingTableChange(table, change, new Date(), policy, clock), {
            create: change.op === 'addSite',
            origin,
            ...(observer?.lockWait === undefined ? {} : { onWait: (wait) => observer.lockWait?.(wait) }),
          }),
      };
      const result = await applyChangeRequest(store, request, { userAgent: 'proximation-deploy health check', ...(observer === undefined ? {} : { observer }) });
      if (result.changed) await recordRoutingChange(path, result.table, request.change, { ...deployActor(), via: 'file' }).catch(() => undefined);
      return result;
    },
  };
}
