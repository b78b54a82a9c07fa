/**
 * `GET /api/overview`, what the status page shows, in one JSON document:
 *
 *   { generatedAt, instances, fleetProblem?, sites, certificates, changes, history }
 *
 * `instances` (without their certificate states) and `sites` have the shape of the fleet status
 * (`GET /api/status`, fleet-status.ts in shared), computed from the routing table this instance serves and the fleet storage's heartbeats
 * and lease records: every live instance with its generation, workers, rates and RSS as its heartbeat
 * last said, this one marked `self` and given its own health `status` (it is listed from its own
 * process until its first heartbeat is read back); members with lease expiry and age, in-flight
 * counts and last request time summed over the fleet. Added here: per version `registeredAt` and per
 * site `canRollBack`, and per member `health` as this instance's processes see it (`up`, or `down`:
 * failing its health checks, `ejected`: after connect failures; out of rotation in any worker counts).
 * A failed fleet read does not fail the answer: `fleetProblem` says what failed and only this instance
 * is listed. `certificates` is the `proximation certs` report (expiry, issuer, next renewal, last error
 * and the backoff's next attempt), `changes` the change log (newest first), and `history` the last 15
 * minutes of request rate, errors and latency for the sites named in `?history=a,b` (at most
 * MAX_HISTORY_SITES: the page asks for the ones on screen, so the answer stays small at 1,000 sites).
 * It reads the certificate store, the change log and the fleet records on each call: the admin
 * listener's work, never the request path's.
 */
import type http from 'node:http';
import os from 'node:os';
import { certificateNames, emptyRoutingTable, errorMessage, fleetStatus, readChangeLog, type FleetStatus, type FleetStorage, type RoutesLocation, type RoutingTable, type UpstreamTraffic } from '@proximation/shared';
import type { CertStore } from '../certs/cert-store.js';
import { certificatesReport } from '../certs-report.js';
import type { Health } from './admin-server.js';
import { sendJson } from './api-http.js';
import type { Logger } from '../logger.js';
import type { UnavailableUpstream } from '../proxy/upstreams.js';
import type { MetricsHistory } from './metrics-history.js';

export const ADMIN_OVERVIEW_PATH = '/api/overview';
const MAX_HISTORY_SITES = 100;

export interface OverviewSources {
  routes: RoutesLocation;
  certificates: CertStore;
  /** The table this instance serves. */
  table: () => RoutingTable | undefined;
  health: () => Health;
  history: MetricsHistory;
  addresses: () => string[];
  fleet: FleetStorage;
  /** This instance's id in the fleet; undefined until its heartbeat started. */
  instanceId: () => string | undefined;
  /** What this instance's serving processes report now. */
  serving: () => Promise<{ workers: number; traffic: UpstreamTraffic[]; rssBytes: number; unavailable: UnavailableUpstream[] }>;
  log: Logger;
}

// Without the heartbeat's certificate states: one per routed name and instance (70 KiB each at 1,000
// sites), while the page's certificate table already comes from the store.
type OverviewInstance = Omit<FleetStatus['instances'][number], 'certificates'> & { self: boolean; status?: Health['status'] };

/** The fleet's live instances and its sites, from the served table; this instance alone when the fleet cannot be read. */
async function readFleet(sources: OverviewSources, table: RoutingTable, now: number): Promise<{ fleet: FleetStatus; problem?: string }> {
  try {
    const [instances, leases] = await Promise.all([sources.fleet.readInstances(), sources.fleet.readLeases()]);
    for (const problem of [...instances.problems, ...leases.problems]) sources.log.warn({ problem }, 'fleet record ignored');
    return { fleet: fleetStatus(table, instances.records, leases.records, now) };
  } catch (err) {
    return { fleet: fleetStatus(table, [], [], now), problem: `The fleet records could not be read (${errorMessage(err)}); only this instance is listed.` };
  }
}

export function overviewHandler(sources: OverviewSources): (req: http.IncomingMessage, res: http.ServerResponse) => Promise<void> {
  const startedAt = new Date().toISOString();
  return async (req, res) => {
    const now = new Date();
    const health = sources.health();
    const served = sources.table();
    const table = served ?? emptyRoutingTable();
    const wanted = new URL(req.url ?? '/', 'http://admin').searchParams.get('history')?.split(',').slice(0, MAX_HISTORY_SITES) ?? [];
    const [certificates, changes, { fleet, problem }, serving] = await Promise.all([
      // Without a table, the lineages alone (none is called not-routed).
      certificatesReport(sources.certificates, served?.sites.flatMap(certificateNames), now),
      readChangeLog(sources.routes),
      readFleet(sources, table, now.getTime()),
      sources.serving(),
    ]);
    const selfId = sources.instanceId();
    const instances: OverviewInstance[] = fleet.instances.map(({ certificates: _certificates, ...instance }) => (instance.id === selfId ? { ...instance, self: true, status: health.status } : { ...instance, self: false }));
    if (!instances.some((instance) => instance.self)) {
      instances.unshift({
        id: selfId ?? `${os.hostname()}:${process.pid}`,
        host: os.hostname(),
        pid: process.pid,
        addresses: sources.addresses(),
        startedAt,
        lastSeen: now.toISOString(),
        routesGeneration: health.routesGeneration,
        workers: serving.workers,
        inFlight: serving.traffic.reduce((sum, t) => sum + t.inFlight, 0),
        websockets: serving.traffic.reduce((sum, t) => sum + t.websockets, 0),
        rssBytes: serving.rssBytes,
        ...sources.history.latestRates(),
        self: true,
        status: health.status,
      });
    }
    const down = new Map(serving.unavailable.map((u) => [u.upstream, u.state]));
    sendJson(res, 200, {
      generatedAt: now.toISOString(),
      instances,
      ...(problem === undefined ? {} : { fleetProblem: problem }),
      sites: fleet.sites.map((site, i) => {
        const { history, versions } = table.sites[i]!;
        return {
          ...site,
          canRollBack: history.length > 0,
          versions: site.versions.map((version, j) => ({
            ...version,
            registeredAt: versions[j]!.registeredAt,
            members: version.members.map((member) => ({ ...member, health: down.get(member.upstream) ?? 'up' })),
          })),
        };
      }),
      certificates,
      changes,
      history: Object.fromEntries(wanted.map((name) => [name, sources.history.history(name)])),
    });
  };
}
