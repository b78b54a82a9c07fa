/**
 * DNS-01 through Amazon Route 53, with the AWS SDK's usual credentials (on ECS the task role; else the
 * environment, the shared config files, instance metadata) and endpoint (`AWS_ENDPOINT_URL_ROUTE_53`
 * points it elsewhere, as the tests do). The hosted zone is the public zone whose name is the nearest
 * enclosing one of the record's (ListHostedZonesByName), as certbot's dns-route53 plugin finds it.
 *
 * A TXT record set holds every value of its name, and Route 53 changes whole record sets: present and
 * cleanup read the set, add or remove their one value, and UPSERT the rest (DELETE the set when nothing
 * is left), under a lease lock per record name in the shared storage (`proximation/locks/dns01-<name>.lock`), so two orders at one name (a
 * wildcard and its base name, or two instances) never drop each other's value. Each change is waited
 * for until Route 53 reports it INSYNC (GetChange every CHANGE_POLL_MS, at most `changeTimeoutMs`).
 *
 * Throws ProximationError ERR_DNS_ZONE_NOT_FOUND (no public hosted zone holds the name),
 * ERR_DNS_PROVIDER (the API refused: its error name and message, such as AccessDenied with the action,
 * or a change not INSYNC in time).
 */
import { setTimeout as delay } from 'node:timers/promises';
import {
  ChangeResourceRecordSetsCommand,
  GetChangeCommand,
  ListHostedZonesByNameCommand,
  ListResourceRecordSetsCommand,
  Route53Client,
  type Change,
} from '@aws-sdk/client-route-53';
import { ProximationError, errorMessage, withStorageLock, type Storage } from '@proximation/shared';
import type { ConfValue } from '../renewal-conf.js';
import { CHALLENGE_TTL_S, type DnsProvider, type TxtRecord } from './provider.js';

const CHANGE_POLL_MS = 2000;

export function openRoute53Provider(storage: Storage, changeTimeoutMs: number): DnsProvider {
  // Route 53 is a global service whose API lives in us-east-1; a configured region is used when there is one.
  const client = new Route53Client({ region: process.env.AWS_REGION ?? process.env.AWS_DEFAULT_REGION ?? 'us-east-1' });
  const api = async <T>(what: string, call: () => Promise<T>): Promise<T> => {
    try {
      return await call();
    } catch (err) {
      if (err instanceof ProximationError) throw err;
      const name = (err as { name?: string }).name ?? 'Error';
      throw new ProximationError('ERR_DNS_PROVIDER', `Route 53 refused ${what}: ${name}: ${errorMessage(err)}. Check the task role's Route 53 permissions (README: DNS-01, Route 53).`, {
        cause: err,
      });
    }
  };

  const zoneOf = async (name: string): Promise<{ id: string; name: string }> => {
    const labels = name.split('.');
    for (let i = 0; i < labels.length - 1; i++) {
      const candidate = `${labels.slice(i).join('.')}.`;
      const { HostedZones = [] } = await api(`listing hosted zones for ${candidate}`, () => client.send(new ListHostedZonesByNameCommand({ DNSName: candidate, MaxItems: 10 })));
      const zone = HostedZones.find((z) => z.Name?.toLowerCase() === candidate && z.Config?.PrivateZone !== true);
      if (zone?.Id !== undefined) return { id: zone.Id.replace(/^\/hostedzone\//, ''), name: candidate };
    }
    throw new ProximationError('ERR_DNS_ZONE_NOT_FOUND', `no public Route 53 hosted zone of this account holds ${name}; create it, or delegate _acme-challenge with a CNAME into one.`);
  };

  const valuesAt = async (zone: string, name: string): Promise<{ values: string[]; ttl: number }> => {
    const fqdn = `${name}.`;
    const { ResourceRecordSets = [] } = await api(`reading TXT ${name}`, () =>
      client.send(new ListResourceRecordSetsCommand({ HostedZoneId: zone, StartRecordName: fqdn, StartRecordType: 'TXT', MaxItems: 1 })),
    );
    const set = ResourceRecordSets.find((r) => r.Name?.toLowerCase() === fqdn && r.Type === 'TXT');
    return { values: (set?.ResourceRecords ?? []).map((r) => r.Value ?? ''), ttl: set?.TTL ?? CHALLENGE_TTL_S };
  };

  const waitInSync = async (id: string, name: string): Promise<void> => {
    const deadline = Date.now() + changeTimeoutMs;
    for (;;) {
      const { ChangeInfo } = await api(`reporting change ${id}`, () => client.send(new GetChangeCommand({ Id: id })));
      if (ChangeInfo?.Status === 'INSYNC') return;
      if (Date.now() + CHANGE_POLL_MS > deadline) {
        throw new ProximationError('ERR_DNS_PROVIDER', `the Route 53 change ${id} for ${name} was not INSYNC within ${changeTimeoutMs} ms; raise PROXIMATION_DNS_PROPAGATION_TIMEOUT.`);
      }
      await delay(CHANGE_POLL_MS);
    }
  };

  const change = (record: TxtRecord, op: 'add' | 'remove'): Promise<void> =>
    withStorageLock(storage, `proximation/locks/dns01-${record.name}.lock`, async () => {
      const zone = await zoneOf(record.name);
      const quoted = quote(record.value);
      const { values, ttl } = await valuesAt(zone.id, record.name);
      const next = op === 'add' ? [...new Set([...values, quoted])] : values.filter((v) => v !== quoted);
      if (next.length === values.length && next.every((v, i) => v === values[i])) return;
      const changes: Change[] =
        next.length === 0
          ? [{ Action: 'DELETE', ResourceRecordSet: { Name: `${record.name}.`, Type: 'TXT', TTL: ttl, ResourceRecords: values.map((Value) => ({ Value })) } }]
          : [{ Action: 'UPSERT', ResourceRecordSet: { Name: `${record.name}.`, Type: 'TXT', TTL: CHALLENGE_TTL_S, ResourceRecords: next.map((Value) => ({ Value })) } }];
      const { ChangeInfo } = await api(`changing TXT ${record.name} in zone ${zone.name} (${zone.id})`, () =>
        client.send(new ChangeResourceRecordSetsCommand({ HostedZoneId: zone.id, ChangeBatch: { Comment: 'ACME DNS-01 challenge (proximation)', Changes: changes } })),
      );
      if (ChangeInfo?.Id !== undefined) await waitInSync(ChangeInfo.Id, record.name);
    });

  return {
    name: 'route53',
    present: (record) => change(record, 'add'),
    cleanup: (record) => change(record, 'remove'),
    renewalParams: (): [string, ConfValue][] => [['authenticator', 'dns-route53']],
  };
}

/** A TXT value in Route 53's zone-file form; ACME values are base64url, so nothing needs escaping. */
function quote(value: string): string {
  return `"${value}"`;
}
