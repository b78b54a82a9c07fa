/**
 * The fleet as one JSON document, computed from the routing table, the instances' heartbeats and the
 * members' lease records (fleet-storage.ts): what `deploy status --json` prints and what the admin API
 * answers at `GET /api/status`. `fleetStatus` is pure; `readFleetStatus` reads its three sources (the
 * routing table, on either backend, and the fleet records beside it) and hands on the records it skipped. The field names are a contract (a status page reads them), so
 * fields may be added, never renamed:
 *
 * { "generatedAt": ISO,
 *   "instances": [{ "id", "host", "pid", "addresses": string[], "startedAt": ISO, "lastSeen": ISO,
 *                   "routesGeneration", "workers", "inFlight", "websockets",
 *                   "requestsPerSecond"?, "errorsPerSecond"?, "rssBytes"?,
 *                   "certificates": [{ "name", "notAfter": ISO|null, "state": "valid"|"missing"|"error", "error"? }] }],
 *   "sites": [{ "name", "hosts": string[], "activeVersion": string|null,
 *               "versions": [{ "name", "active", "previewUrl"?,
 *                              "members": [{ "upstream", "identity"?, "leaseExpiresAt"?: ISO, "leaseAgeMs"?,
 *                                            "inFlight", "websockets", "lastRequestAt"?: ISO }] }] }] }
 *
 * Only live instances are listed: a heartbeat not rewritten for three of its periods is left out.
 * The rates and RSS are there when the instance's heartbeat carries them (older versions' do not).
 * `members` lists every upstream of a version (static ones without identity and lease); in-flight counts
 * are summed over the live instances' latest heartbeats; `leaseAgeMs` is the time since the latest
 * renewal (or the join). Instances are sorted by id, sites and versions keep the table's order.
 */
import { HEARTBEAT_PERIODS_TO_LIVE, fleetStorageOf, type InstanceRecord, type LeaseRecord, type UpstreamTraffic } from './fleet-storage.js';
import { readRoutingTable, type RoutesLocation } from './routes-file.js';
import { clockFrom, memberExpiresAt, memberKey } from './members.js';
import { previewHost, type RoutingTable } from './routing-table.js';
import { formatDuration } from './duration.js';
import { plural } from './command-line.js';

export { HEARTBEAT_PERIODS_TO_LIVE };

export interface FleetStatus {
  generatedAt: string;
  instances: {
    id: string;
    host: string;
    pid: number;
    addresses: string[];
    startedAt: string;
    lastSeen: string;
    routesGeneration: number;
    workers: number;
    inFlight: number;
    websockets: number;
    requestsPerSecond?: number;
    errorsPerSecond?: number;
    rssBytes?: number;
    certificates: InstanceRecord['certificates'];
  }[];
  sites: {
    name: string;
    hosts: string[];
    activeVersion: string | null;
    versions: {
      name: string;
      active: boolean;
      previewUrl?: string;
      members: { upstream: string; identity?: string; leaseExpiresAt?: string; leaseAgeMs?: number; inFlight: number; websockets: number; lastRequestAt?: string }[];
    }[];
  }[];
}

/** The fleet now, from the routing table at `routes` and the records beside it; `problems` as FleetStorage reports them. */
export async function readFleetStatus(routes: RoutesLocation, fleet = fleetStorageOf(routes)): Promise<{ status: FleetStatus; problems: string[] }> {
  const [table, instances, leases] = await Promise.all([readRoutingTable(routes.storage, routes.key), fleet.readInstances(), fleet.readLeases()]);
  return { status: fleetStatus(table, instances.records, leases.records, Date.now()), problems: [...instances.problems, ...leases.problems] };
}

/** The heartbeats of instances that are live at `now`. */
export function liveInstances(records: readonly InstanceRecord[], now: number): InstanceRecord[] {
  return records.filter((r) => Date.parse(r.writtenAt) + HEARTBEAT_PERIODS_TO_LIVE * r.periodMs > now);
}

export function fleetStatus(table: RoutingTable, instances: readonly InstanceRecord[], leases: readonly LeaseRecord[], now: number): FleetStatus {
  const live = liveInstances(instances, now).sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  const traffic = new Map(sumTraffic(live.map((i) => i.traffic)).map(({ site, version, upstream, ...counts }) => [memberKey(site, version, upstream), counts]));
  const { renewals } = clockFrom(leases, now);
  return {
    generatedAt: new Date(now).toISOString(),
    instances: live.map((i) => ({
      id: i.id,
      host: i.host,
      pid: i.pid,
      addresses: i.addresses,
      startedAt: i.startedAt,
      lastSeen: i.writtenAt,
      routesGeneration: i.routesGeneration,
      workers: i.workers,
      inFlight: i.traffic.reduce((sum, t) => sum + t.inFlight, 0),
      websockets: i.traffic.reduce((sum, t) => sum + t.websockets, 0),
      ...(i.requestsPerSecond === undefined ? {} : { requestsPerSecond: i.requestsPerSecond }),
      ...(i.errorsPerSecond === undefined ? {} : { errorsPerSecond: i.errorsPerSecond }),
      ...(i.rssBytes === undefined ? {} : { rssBytes: i.rssBytes }),
      certificates: i.certificates,
    })),
    sites: table.sites.map((site) => ({
      name: site.name,
      hosts: [...site.hosts],
      activeVersion: site.activeVersion,
      versions: site.versions.map((version) => {
        const host = previewHost(site, version.name);
        return {
          name: version.name,
          active: version.name === site.activeVersion,
          ...(host === undefined ? {} : { previewUrl: `https://${host}/` }),
          members: version.upstreams.map((upstream) => {
            const member = version.members?.find((m) => m.upstream === upstream);
            const seen = traffic.get(memberKey(site.name, version.name, upstream)) ?? { inFlight: 0, websockets: 0 };
            if (member === undefined) return { upstream, ...seen };
            const expiresAt = memberExpiresAt(site.name, version.name, member, renewals);
            return { upstream, identity: member.identity, leaseExpiresAt: new Date(expiresAt).toISOString(), leaseAgeMs: Math.max(0, now - (expiresAt - member.leaseMs)), ...seen };
          }),
        };
      }),
    })),
  };
}

/** Sums the snapshots of several processes (an instance's workers, or the instances of a fleet). */
export function sumTraffic(parts: readonly (readonly UpstreamTraffic[])[]): UpstreamTraffic[] {
  const sums = new Map<string, UpstreamTraffic>();
  for (const t of parts.flat()) {
    const key = memberKey(t.site, t.version, t.upstream);
    const known = sums.get(key);
    if (known === undefined) sums.set(key, { ...t });
    else {
      const latest = [known.lastRequestAt, t.lastRequestAt].filter((x) => x !== undefined).sort().at(-1);
      sums.set(key, { ...known, inFlight: known.inFlight + t.inFlight, websockets: known.websockets + t.websockets, ...(latest === undefined ? {} : { lastRequestAt: latest }) });
    }
  }
  return [...sums.values()];
}

/** The status as text, for `deploy status` and `proximation status`: instances, then sites, versions and members. */
export function formatFleetStatus(status: FleetStatus): string {
  const now = Date.parse(status.generatedAt);
  const age = (iso: string) => formatDuration(Math.max(0, Math.round((now - Date.parse(iso)) / 1000) * 1000));
  const lines = [`${plural(status.instances.length, 'instance')}:`];
  for (const i of status.instances) {
    lines.push(`  ${i.id}  up ${age(i.startedAt)}, generation ${i.routesGeneration}, ${plural(i.workers, 'worker')}, ${i.inFlight} in flight, ${plural(i.websockets, 'WebSocket')}, seen ${age(i.lastSeen)} ago`);
  }
  for (const site of status.sites) {
    lines.push(`site ${site.name} (${site.hosts.join(', ')}): ${site.activeVersion === null ? 'no active version' : `active ${site.activeVersion}`}`);
    for (const v of site.versions) {
      lines.push(`  ${v.active ? '*' : ' '} ${v.name}${v.members.length === 0 ? '  (no upstreams)' : ''}`);
      for (const m of v.members) {
        const lease = m.identity === undefined ? 'static' : `${m.identity}, lease renewed ${formatDuration(Math.round((m.leaseAgeMs ?? 0) / 1000) * 1000)} ago${Date.parse(m.leaseExpiresAt ?? '') <= now ? ' (expired)' : ''}`;
        lines.push(`      ${m.upstream}  ${lease}; ${m.inFlight} in flight, ${plural(m.websockets, 'WebSocket')}${m.lastRequestAt === undefined ? '' : `, last request ${age(m.lastRequestAt)} ago`}`);
      }
    }
  }
  return lines.join('\n');
}
