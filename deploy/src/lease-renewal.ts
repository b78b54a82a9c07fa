/**
 * Keeping members' leases (members.ts in shared) while their app lives, for `deploy run`.
 *
 * `renewLease` writes one renewal to the member's lease record (fleet-storage.ts). It refuses with
 * ERR_MEMBER_IDENTITY, writing nothing, when the record holds a renewal of another identity whose lease
 * is still running: one address has one holder, and overwriting the holder's record would cut its
 * lease short. A record of another identity that has run out may be replaced (the address was handed
 * to this task after the other one stopped).
 *
 * `keepLeases` renews every member at once and then every third of its lease, one round at a time, and
 * once per lease reads the routing table to see that each member is still there as this identity:
 * - there, as this identity: nothing to do;
 * - there, as another identity, or its renewal refused: it is reported and no longer renewed;
 * - gone, while its renewals were being written (someone took it out: `deploy deregister`, the status
 *   page): reported and no longer renewed, so that the removal stays;
 * - gone after its renewals had failed for a whole lease (the next write pruned it as expired):
 *   `rejoin` is called, which registers it again.
 * A renewal or read that fails (storage unreachable) is reported and retried at the next round; the
 * proxies stop routing to the member once its lease runs out meanwhile. `stop()` ends the rounds and
 * resolves once a round in progress has finished; nothing is renewed after it.
 */
import { setTimeout as delay } from 'node:timers/promises';
import { ProximationError, errorMessage, type FleetStorage, type RoutingTable } from '@proximation/shared';

export interface Member {
  readonly site: string;
  readonly version: string;
  readonly upstream: string;
  readonly identity: string;
  readonly leaseMs: number;
}

export async function renewLease(fleet: FleetStorage, member: Member, now = Date.now()): Promise<void> {
  const { site, version, upstream, identity, leaseMs } = member;
  const held = await fleet.getLease(site, version, upstream);
  if (held !== undefined && held.identity !== identity && Date.parse(held.renewedAt) + held.leaseMs > now) {
    throw new ProximationError(
      'ERR_MEMBER_IDENTITY',
      `Not renewing the lease of ${upstream} in ${site}/${version} as ${identity}: ${held.identity} holds it, renewed at ${held.renewedAt}. ` +
        'Two tasks cannot hold one address: check that this task really has that address.',
    );
  }
  await fleet.putLease({ site, version, upstream, identity, leaseMs, renewedAt: new Date(now).toISOString() });
}

export interface LeaseKeeper {
  stop(): Promise<void>;
}

export function keepLeases(options: {
  fleet: FleetStorage;
  members: readonly Member[];
  readTable: () => Promise<RoutingTable>;
  rejoin: () => Promise<void>;
  report: (line: string) => void;
}): LeaseKeeper {
  const { fleet, report } = options;
  const stopping = new AbortController();
  const kept = new Set(options.members);
  const lastRenewed = new Map<Member, number>(options.members.map((m) => [m, Date.now()]));
  const periodMs = Math.min(...options.members.map((m) => m.leaseMs)) / 3;

  const drop = (member: Member, why: string) => {
    kept.delete(member);
    report(`${member.upstream} is no longer renewed: ${why}`);
  };

  const renewAll = async () => {
    for (const member of kept) {
      try {
        await renewLease(fleet, member);
        lastRenewed.set(member, Date.now());
      } catch (err) {
        if (err instanceof ProximationError && err.code === 'ERR_MEMBER_IDENTITY') drop(member, err.message);
        else report(`renewing the lease of ${member.upstream} failed (retried in ${Math.round(periodMs)} ms): ${errorMessage(err)}`);
      }
    }
  };

  const checkMembership = async () => {
    let table: RoutingTable;
    try {
      table = await options.readTable();
    } catch (err) {
      report(`reading the routing table to check membership failed (retried in a lease): ${errorMessage(err)}`);
      return;
    }
    let rejoin = false;
    for (const member of kept) {
      const version = table.sites.find((s) => s.name === member.site)?.versions.find((v) => v.name === member.version);
      const listed = version?.members?.find((m) => m.upstream === member.upstream);
      if (listed !== undefined && listed.identity !== member.identity) drop(member, `the routing table lists it as a member of ${listed.identity}`);
      else if (listed === undefined && Date.now() - (lastRenewed.get(member) ?? 0) < member.leaseMs) {
        drop(member, `it was taken out of ${member.site}/${member.version} (deploy deregister or the status page); it stays out, the app keeps running`);
      } else if (listed === undefined) rejoin = true;
    }
    if (rejoin) {
      report(`a member's lease ran out while its renewals failed and it was removed; joining ${options.members[0]?.site}/${options.members[0]?.version} again`);
      await options.rejoin().catch((err: unknown) => report(`joining again failed (retried in a lease): ${errorMessage(err)}`));
    }
  };

  const rounds = (async () => {
    for (let round = 0; !stopping.signal.aborted && kept.size > 0; round++) {
      if (round > 0 && round % 3 === 0) await checkMembership();
      if (stopping.signal.aborted) break;
      await renewAll();
      await delay(periodMs, undefined, { signal: stopping.signal }).catch(() => undefined);
    }
  })();

  return {
    async stop() {
      stopping.abort();
      await rounds;
    },
  };
}
