/**
 * Follows the members' lease renewals (members.ts, fleet-storage.ts in shared) for the router, which
 * drops an expired member by time on each request: this only has to see renewals before the leases
 * they extend run out. It reads the lease records every `pollMs` (the routing table's poll) as a
 * follower of renewals (FleetStorage's `followRenewals`: the listing, plus only the records whose lease
 * is near its end or that are new), and hands the renewals on when any of them changed. Malformed or foreign records are logged once each and left
 * out; a failed read is logged (once per outage, outage-log.ts) and the last renewals stay in force (so
 * leases run out on time).
 */
import { clockFrom, type FleetStorage, type MemberRenewal } from '@proximation/shared';
import type { Logger } from '../logger.js';
import { outageLog } from '../outage-log.js';
import { pollEvery } from '../poll-loop.js';

export class LeaseWatcher {
  private loop: { stop(): void } | undefined;
  private last = '';
  private readonly failures;

  constructor(
    private readonly storage: FleetStorage,
    private readonly pollMs: number,
    private readonly log: Logger,
    private readonly onRenewals: (renewals: Map<string, MemberRenewal>) => void,
  ) {
    this.failures = outageLog(log, 'reading the lease records failed; the last renewals seen stay in force', 'lease records readable again');
  }

  async start(): Promise<void> {
    await this.poll();
    this.loop = pollEvery(this.pollMs, () => this.poll());
  }

  private async poll(): Promise<void> {
    try {
      const { records, problems } = await this.storage.readLeases({ followRenewals: { pollMs: this.pollMs } });
      this.failures.succeeded();
      for (const problem of problems) this.log.warn({ problem }, 'lease record ignored');
      const { renewals } = clockFrom(records, Date.now());
      const text = JSON.stringify([...renewals].sort(([a], [b]) => (a < b ? -1 : 1)));
      if (text === this.last) return;
      this.last = text;
      this.onRenewals(renewals as Map<string, MemberRenewal>);
    } catch (err) {
      this.failures.failed(err);
    }
  }

  stop(): void {
    this.loop?.stop();
  }
}
