/**
 * The fleet as one JSON document, computed from the routing table, the instances' heartbeats and the
 * members' lease records (fleet-storage.ts): what `deploy status --json` prints and what the admin API
 * answers at `GET /api/status`. Pure; the field names are a contract (a status page reads them), so
 * fields may be added, never renamed:
 *
 * { "generatedAt": ISO,
 *   "instances": [{ "id", "host", "pid", "addresses": string[], "startedAt": ISO, "lastSeen": ISO,
 *                   "routesGeneration", "workers", "inFlight", "websockets",
 *                   "certificates": [{ "name", "notAfter": ISO|null, "state": "valid"|"missing"|"error", "error"? }] }],
 *   "sites": [{ "name", "hosts": string[], "activeVersion": string|null,
 *               "versions": [{ "name", "active", "previewUrl"?,
 *                              "members": [{ "upstream", "identity"?, "leaseExpiresAt"?: ISO, "leaseAgeMs"?,
 *                                            "inFlight", "websockets", "lastRequestAt"?: ISO }] }] }] }
 *
 * Only live instances are listed: a heartbeat not rewritten for three of its periods is left out.
 * `members` lists every upstream of a version (static ones without identity and lease); in-flight counts
 * are summed over the live instances' latest heartbeats; `leaseAgeMs` is the time since the latest
 * renewal (or the join). Instances are sorted by id, sites and versions keep the table's order.
 */
import type { InstanceRecord, LeaseRecord, UpstreamTraffic } from './fleet-storage.js';
import { clockFrom, memberExpiresAt, memberKey } from './members.js';
import { previewHost, type RoutingTable } from './routing-table.js';

export const HEARTBEAT_PERIODS_TO_LIVE = 3;

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
