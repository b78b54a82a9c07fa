/**
 * Leased members of a version: the pure rules, shared by the proxies (who route), deploy (who joins,
 * renews and leaves) and the admin API (who writes the table for others).
 *
 * A member is an upstream a running task registered for itself (`deploy register --lease`), with an identity (the ECS task ARN, else host and pid) and a lease. The routing
 * table says who the members are (`versions[].members`: upstream, identity, lease length, join time);
 * renewals never touch the table, they go to per-member lease records (fleet-storage.ts), so that the
 * table changes only when membership changes. A member's lease runs out `leaseMs` after its latest
 * renewal by the same identity, or after it joined when no such renewal is known:
 * `memberExpiresAt`. Every proxy compares that time with its clock on each request (the router), so an
 * expired member leaves every proxy's rotation with no write at all, and the next write of the table
 * removes it (`pruneExpiredMembers` in routing-table.ts).
 *
 * Clocks of the machines sharing the directory must agree (NTP) to well under the lease.
 */
import { ProximationError } from './errors.js';
import type { VersionMember } from './routing-table.js';

/** The shortest lease accepted: renewals go out every third of it, and a poll of the proxies takes a second. */
export const MIN_LEASE_MS = 3_000;
export const MAX_LEASE_MS = 86_400_000;

const IDENTITY = /^[\x21-\x7e]{1,512}$/;

/** One renewal as the lease records hold it. */
export interface MemberRenewal {
  readonly identity: string;
  /** Epoch ms. */
  readonly renewedAtMs: number;
}

/**
 * What a writer of the table knows about leases now: `now` and each member's latest renewal (by key).
 * Without one, a writer must not prune members nor take over an address, since it cannot tell a live
 * member from a dead one.
 */
export interface MemberClock {
  readonly now: number;
  readonly renewals: ReadonlyMap<string, MemberRenewal>;
}

/** The key of a member's lease: site, version and upstream. */
export function memberKey(site: string, version: string, upstream: string): string {
  return `${site}\u0000${version}\u0000${upstream}`;
}

/** Epoch ms at which `member` of site/version leaves the rotation unless renewed again. */
export function memberExpiresAt(site: string, version: string, member: VersionMember, renewals: ReadonlyMap<string, MemberRenewal>): number {
  const joined = Date.parse(member.joinedAt);
  const renewal = renewals.get(memberKey(site, version, member.upstream));
  const renewed = renewal !== undefined && renewal.identity === member.identity ? renewal.renewedAtMs : Number.NEGATIVE_INFINITY;
  return Math.max(joined, renewed) + member.leaseMs;
}

/** The problem with an identity, or undefined: printable ASCII without spaces, 1-512 characters. */
export function identityProblem(identity: string): string | undefined {
  return IDENTITY.test(identity) ? undefined : 'an identity is 1-512 printable ASCII characters without spaces (an ECS task ARN, or host:pid)';
}

/** Throws ERR_INVALID_LEASE unless `leaseMs` is a whole number of ms within [MIN_LEASE_MS, MAX_LEASE_MS]. */
export function checkLease(leaseMs: number, field: string): void {
  if (!Number.isSafeInteger(leaseMs) || leaseMs < MIN_LEASE_MS || leaseMs > MAX_LEASE_MS) {
    throw new ProximationError(
      'ERR_INVALID_LEASE',
      `Invalid lease ${leaseMs} ms for ${field}: a lease must be at least ${MIN_LEASE_MS / 1000} s (renewals go out every third of it) and at most 1 day.`,
    );
  }
}

/** The clock of a writer that has just read `leases` (fleet-storage.ts) at `now`. */
export function clockFrom(leases: readonly { site: string; version: string; upstream: string; identity: string; renewedAt: string }[], now: number): MemberClock {
  const renewals = new Map<string, MemberRenewal>();
  for (const lease of leases) {
    const renewedAtMs = Date.parse(lease.renewedAt);
    const key = memberKey(lease.site, lease.version, lease.upstream);
    const known = renewals.get(key);
    if (known === undefined || known.renewedAtMs < renewedAtMs) renewals.set(key, { identity: lease.identity, renewedAtMs });
  }
  return { now, renewals };
}
