/**
 * The routing table file on the shared directory as a RoutesTarget (`--routes FILE`,
 * `PROXIMATION_ROUTES`): reads validate the file, updates run under the file's lease lock and write
 * atomically (see routes-file.ts in @proximation/shared), so any number of deploy processes on any
 * number of hosts can change it at once without losing a change. Each update sees the members' lease
 * records (member-update.ts), so it removes expired members. Health checks run from this process.
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
  readFleetStatus,
  readRoutingTableFile,
  updateRoutingTableWithLeases,
} from '@proximation/shared';
import type { IssuancePolicy, RoutingTableStore, SiteChallenge } from '@proximation/shared';
import type { RoutesTarget } from './routes-target.js';

export function issuancePolicyFromEnv(env: NodeJS.ProcessEnv): IssuancePolicy {
  const challenge = env.PROXIMATION_ACME_CHALLENGE;
  return {
    issuer: env.PROXIMATION_ISSUER === 'acme' ? 'acme' : 'local',
    challenge: SITE_CHALLENGES.includes(challenge as SiteChallenge) ? (challenge as SiteChallenge) : 'http-01',
  };
}

export function fileTarget(path: string, policy: IssuancePolicy): RoutesTarget {
  const read = () => readRoutingTableFile(path);
  const fleet = fileFleetStorage(fleetDirOf(path));
  return {
    read,
    leases: async () => (await fleet.readLeases()).records,
    status: async () => (await readFleetStatus(path)).status,
    update(request, observer) {
      const store: RoutingTableStore = {
        read,
        update: (change) =>
          updateRoutingTableWithLeases(path, fleet, (table, clock) => applyRoutingTableChange(table, change, new Date(), policy, clock), {
            ...(observer?.lockWait === undefined ? {} : { onWait: (wait) => observer.lockWait?.(wait) }),
          }),
      };
      return applyChangeRequest(store, request, { userAgent: 'proximation-deploy health check', ...(observer === undefined ? {} : { observer }) });
    },
  };
}
