/**
 * Before the CA is told to look, make sure it will find the record: the authoritative servers of the
 * record's zone are asked directly (no resolver cache in between) until every one of them answers the
 * new TXT value, as certmagic does.
 *
 * - `challengeTarget(name)` follows CNAMEs from `_acme-challenge.<domain>` (the usual way to delegate
 *   challenges into another zone, Let's Encrypt follows them too), at most MAX_CNAMES deep; the name the
 *   record must be put at.
 * - `waitFor(record)` finds the zone (SOA), its NS names and their addresses through the resolvers, then
 *   queries each address on `authoritativePort` without recursion every POLL_MS until all answer the
 *   value. It throws ProximationError ERR_DNS_PROPAGATION_TIMEOUT after `timeoutMs`, naming the servers
 *   still without it; ERR_DNS_ZONE_NOT_FOUND when no SOA is found for the name; ERR_DNS_UNREACHABLE when
 *   no resolver answers.
 */
import { setTimeout as delay } from 'node:timers/promises';
import { ProximationError, errorMessage } from '@proximation/shared';
import { DNS_TIMEOUT_MS, describeServer, query, type DnsServer } from './dns-client.js';
import { TYPE, type DnsMessage } from './dns-message.js';
import type { TxtRecord } from './provider.js';

const MAX_CNAMES = 8;
const POLL_MS = 250;

export interface PropagationOptions {
  /** Recursive resolvers for zone, NS and CNAME lookups. */
  resolvers: readonly DnsServer[];
  /** The port the authoritative servers are asked on (53 on the internet). */
  authoritativePort: number;
  timeoutMs: number;
}

export class PropagationCheck {
  constructor(private readonly options: PropagationOptions) {}

  async challengeTarget(name: string): Promise<string> {
    let current = name;
    for (let i = 0; i < MAX_CNAMES; i++) {
      const answer = await this.resolve(current, TYPE.CNAME);
      const cname = answer.answers.find((r) => r.type === TYPE.CNAME && r.name === current);
      if (cname === undefined) return current;
      current = cname.data;
    }
    throw new ProximationError('ERR_DNS_ZONE_NOT_FOUND', `${name} is a chain of more than ${MAX_CNAMES} CNAMEs; point it at the record's zone directly.`);
  }

  async waitFor(record: TxtRecord): Promise<void> {
    const deadline = Date.now() + this.options.timeoutMs;
    const servers = await this.authoritativeServers(record.name);
    let missing = servers;
    let lastError: string | undefined;
    for (;;) {
      const answered = await Promise.all(
        missing.map(async (server) => {
          try {
            // Each attempt fits in what is left of the wait (ATTEMPTS of them per query).
            const answer = await query(server, record.name, TYPE.TXT, false, Math.max(100, Math.min(DNS_TIMEOUT_MS, (deadline - Date.now()) / 3)));
            return answer.answers.some((r) => r.type === TYPE.TXT && r.name === record.name && r.data === record.value);
          } catch (err) {
            lastError = errorMessage(err);
            return false;
          }
        }),
      );
      missing = missing.filter((_, i) => !answered[i]);
      if (missing.length === 0) return;
      if (Date.now() + POLL_MS > deadline) {
        throw new ProximationError(
          'ERR_DNS_PROPAGATION_TIMEOUT',
          `the TXT record ${record.name} was not answered by ${missing.map(describeServer).join(', ')} within ${this.options.timeoutMs} ms` +
            `${lastError === undefined ? '' : ` (last error: ${lastError})`}. Check that the update reaches every authoritative server ` +
            '(zone transfers to secondaries), or raise PROXIMATION_DNS_PROPAGATION_TIMEOUT.',
        );
      }
      await delay(POLL_MS);
    }
  }

  /** Every address of every NS of the zone holding `name`. */
  private async authoritativeServers(name: string): Promise<DnsServer[]> {
    const zone = await this.zoneOf(name);
    const ns = (await this.resolve(zone, TYPE.NS)).answers.filter((r) => r.type === TYPE.NS && r.name === zone).map((r) => r.data);
    const addresses = new Set<string>();
    for (const host of ns) {
      for (const type of [TYPE.A, TYPE.AAAA]) {
        for (const r of (await this.resolve(host, type)).answers) if (r.type === type && r.data !== '') addresses.add(r.data);
      }
    }
    if (addresses.size === 0) {
      throw new ProximationError('ERR_DNS_ZONE_NOT_FOUND', `the zone ${zone} (of ${name}) lists no name server with an address (NS: ${ns.join(', ') || 'none'}); fix its NS records.`);
    }
    return [...addresses].map((host) => ({ host, port: this.options.authoritativePort }));
  }

  /** The nearest enclosing name with an SOA record; a negative answer's SOA names the zone at once. */
  private async zoneOf(name: string): Promise<string> {
    const labels = name.split('.');
    for (let i = 0; i < labels.length; i++) {
      const candidate = labels.slice(i).join('.');
      const answer = await this.resolve(candidate, TYPE.SOA);
      const soa = answer.answers.find((r) => r.type === TYPE.SOA) ?? answer.authorities.find((r) => r.type === TYPE.SOA);
      if (soa !== undefined && (soa.name === candidate || answer.answers.length === 0)) return soa.name;
    }
    throw new ProximationError('ERR_DNS_ZONE_NOT_FOUND', `no DNS zone holds ${name} (no SOA found through ${this.options.resolvers.map(describeServer).join(', ')}); check the name and PROXIMATION_DNS_RESOLVERS.`);
  }

  /** The first answer any resolver gives, in order. */
  private async resolve(name: string, type: number): Promise<DnsMessage> {
    let lastError: unknown;
    for (const resolver of this.options.resolvers) {
      try {
        return await query(resolver, name, type, true);
      } catch (err) {
        lastError = err;
      }
    }
    throw lastError ?? new ProximationError('ERR_DNS_UNREACHABLE', 'no DNS resolver is configured; set PROXIMATION_DNS_RESOLVERS.');
  }
}
