/**
 * The contract of a DNS provider for ACME DNS-01 (as certmagic's DNSProvider: present, then cleanup).
 *
 * - `present(record)` makes `record.name` (such as `_acme-challenge.example.com`, no trailing dot) answer
 *   the TXT value `record.value` at the provider's primary servers, adding to any values already there:
 *   a wildcard and its base name are validated at the same name at once, and two orders may run
 *   concurrently in one zone. It resolves once the provider has accepted the change (Route 53: INSYNC);
 *   whether the authoritative servers answer it yet is for propagation.ts to find out.
 * - `cleanup(record)` removes exactly that value and no other; removing a value that is not there
 *   succeeds, so a cleanup after a crash (the journal, dns01-journal.ts) or a repeated one is harmless.
 * - Both throw ProximationError with a stable code and a message naming the name, the zone or server
 *   and what to do: ERR_DNS_ZONE_NOT_FOUND, ERR_DNS_UPDATE_REFUSED (the server's REFUSED, NOTAUTH, BADSIG...
 *   named), ERR_DNS_UNREACHABLE, ERR_DNS_HOOK_FAILED, ERR_DNS_PROVIDER (the provider's API said no).
 * - `renewalParams` are the `[renewalparams]` entries that tell certbot (and this issuer, reading a lineage
 *   back) which provider a lineage is renewed with, in certbot's own terms (`authenticator = dns-rfc2136`
 *   and its credentials file, `dns-route53`, or `manual` with the hooks).
 */
import type { ConfValue } from '../renewal-conf.js';

export interface TxtRecord {
  /** The name the CA validates, such as example.com for both example.com and *.example.com. */
  domain: string;
  /** Where the TXT record goes: `_acme-challenge.<domain>`, or where a CNAME there points. */
  name: string;
  value: string;
}

export interface DnsProvider {
  /** For logs and errors: rfc2136, route53, hook. */
  readonly name: string;
  present(record: TxtRecord): Promise<void>;
  cleanup(record: TxtRecord): Promise<void>;
  renewalParams(): [string, ConfValue][];
}

/** The TTL of challenge records: short, as a resolver that caches a stale answer delays validation. */
export const CHALLENGE_TTL_S = 60;

export function challengeRecordName(domain: string): string {
  return `_acme-challenge.${domain}`;
}
