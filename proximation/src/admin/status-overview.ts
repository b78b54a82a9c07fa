/**
 * `GET /api/overview`, what the status page shows, in one JSON document:
 *
 *   { generatedAt, instances, sites, certificates, changes, history }
 *
 * `instances` and `sites` have the shape of the fleet status (`GET /api/status`: instances with their
 * heartbeat fields, sites with versions and members); until the fleet's heartbeats are there, they
 * describe this instance alone, from its served routing table, health and process. `certificates` is
 * the `proximation certs` report (expiry, issuer, next renewal, last error and backoff), `changes` the
 * change log (newest first), and `history` the last 15 minutes of request rate, errors and latency for
 * the sites named in `?history=a,b` (at most MAX_HISTORY_SITES: the page asks for the ones on screen,
 * so the answer stays small at 1,000 sites). It reads the certificate store and the change log on each
 * call: the admin listener's work, never the request path's.
 */
import type http from 'node:http';
import os from 'node:os';
import { certificateNames, previewHost, readChangeLog, type RoutingTable } from '@proximation/shared';
import type { CertStore } from '../certs/cert-store.js';
import { certificatesReport } from '../certs-report.js';
import type { Health } from './admin-server.js';
import { sendJson } from './api-http.js';
import type { MetricsHistory } from './metrics-history.js';

export const ADMIN_OVERVIEW_PATH = '/api/overview';
const MAX_HISTORY_SITES = 100;

export interface OverviewSources {
  routesPath: string;
  certificates: CertStore;
  /** The table this instance serves. */
  table: () => RoutingTable | undefined;
  health: () => Health;
  history: MetricsHistory;
  addresses: () => string[];
}

export function overviewHandler(sources: OverviewSources): (req: http.IncomingMessage, res: http.ServerResponse) => Promise<void> {
  const startedAt = new Date().toISOString();
  return async (req, res) => {
    const now = new Date();
    const health = sources.health();
    const table = sources.table();
    const wanted = new URL(req.url ?? '/', 'http://admin').searchParams.get('history')?.split(',').slice(0, MAX_HISTORY_SITES) ?? [];
    const [certificates, changes] = await Promise.all([certificatesReport(sources.certificates, table?.sites.flatMap(certificateNames), now), readChangeLog(sources.routesPath)]);
    sendJson(res, 200, {
      generatedAt: now.toISOString(),
      instances: [
        {
          id: `${os.hostname()}:${process.pid}`,
          host: os.hostname(),
          pid: process.pid,
          addresses: sources.addresses(),
          startedAt,
          lastSeen: now.toISOString(),
          routesGeneration: health.routesGeneration,
          status: health.status,
          workers: health.workers?.length ?? 1,
          rssBytes: process.memoryUsage.rss(),
          ...sources.history.latestRates(),
        },
      ],
      sites: (table?.sites ?? []).map((site) => ({
        name: site.name,
        hosts: site.hosts,
        activeVersion: site.activeVersion,
        canRollBack: site.history.length > 0,
        versions: site.versions.map((version) => {
          const preview = previewHost(site, version.name);
          return {
            name: version.name,
            active: version.name === site.activeVersion,
            registeredAt: version.registeredAt,
            ...(preview === undefined ? {} : { previewUrl: `https://${preview}/` }),
            members: version.upstreams.map((upstream) => ({ upstream })),
          };
        }),
      })),
      certificates,
      changes,
      history: Object.fromEntries(wanted.map((name) => [name, sources.history.history(name)])),
    });
  };
}
