/**
 * DNS-01 through RFC 2136 dynamic updates signed with TSIG: BIND, Knot, PowerDNS and most self-hosted
 * DNS. Configured by the credentials file of certbot's dns-rfc2136 plugin, so one file serves both and a
 * lineage certbot made with that plugin is renewed here with the same server and key:
 *
 *   dns_rfc2136_server = 192.0.2.1        the primary (an address, as certbot requires)
 *   dns_rfc2136_port = 53                 optional
 *   dns_rfc2136_name = keyname.           the TSIG key's name
 *   dns_rfc2136_secret = <base64>         its secret
 *   dns_rfc2136_algorithm = HMAC-SHA512   optional; certbot's default HMAC-MD5
 *
 * The zone of a record is found as certbot finds it: SOA queries to the same server, from the record's
 * name upwards, until one is answered authoritatively. Each update is sent over TCP, signed, and the
 * server's signature on the answer is checked.
 *
 * `openRfc2136Provider` reads and checks the file once; it throws ERR_DNS_CREDENTIALS_INVALID naming the
 * file and the entry. `present`/`cleanup` throw ERR_DNS_ZONE_NOT_FOUND (no zone at the server holds the
 * name), ERR_DNS_UPDATE_REFUSED (the server's answer named: REFUSED for an unsigned or unauthorised key,
 * NOTAUTH with BADSIG or BADKEY for a wrong secret or key name), ERR_DNS_UNREACHABLE.
 */
import net from 'node:net';
import { ProximationError, readFileIfExists } from '@proximation/shared';
import { parseConfigObj, type ConfValue } from '../renewal-conf.js';
import { describeServer, exchange, newMessageId, query, type DnsServer } from './dns-client.js';
import { TSIG_ALGORITHMS, TYPE, buildUpdate, rcodeName, signTsig, verifyTsig, type TsigAlgorithm, type TsigKey, type TxtChange } from './dns-message.js';
import { CHALLENGE_TTL_S, type DnsProvider, type TxtRecord } from './provider.js';

export async function openRfc2136Provider(credentialsFile: string): Promise<DnsProvider> {
  const bytes = await readFileIfExists(credentialsFile);
  const invalid = (problem: string): ProximationError =>
    new ProximationError('ERR_DNS_CREDENTIALS_INVALID', `${credentialsFile}: ${problem}. It is certbot's dns-rfc2136 credentials file (dns_rfc2136_server, dns_rfc2136_name, dns_rfc2136_secret, dns_rfc2136_algorithm).`);
  if (bytes === undefined) throw invalid('the file does not exist');
  const values = parseConfigObj(bytes.toString('utf8'), credentialsFile).values;
  const text = (key: string): string | undefined => {
    const value: ConfValue | undefined = values.get(key);
    return typeof value === 'string' && value !== '' ? value : undefined;
  };
  const host = text('dns_rfc2136_server');
  if (host === undefined || net.isIP(host) === 0) throw invalid('dns_rfc2136_server must be the IP address of the primary server');
  const port = Number(text('dns_rfc2136_port') ?? '53');
  if (!Number.isInteger(port) || port < 1 || port > 65535) throw invalid(`dns_rfc2136_port ${text('dns_rfc2136_port')} is not a port number`);
  const name = text('dns_rfc2136_name');
  if (name === undefined) throw invalid('dns_rfc2136_name (the TSIG key name) is missing');
  const secretText = text('dns_rfc2136_secret');
  if (secretText === undefined || !/^[A-Za-z0-9+/]+={0,2}$/.test(secretText)) throw invalid('dns_rfc2136_secret must be the base64 secret of the key');
  const algorithm = (text('dns_rfc2136_algorithm') ?? 'HMAC-MD5').toLowerCase();
  if (!(algorithm in TSIG_ALGORITHMS)) throw invalid(`dns_rfc2136_algorithm ${algorithm} is not one of ${Object.keys(TSIG_ALGORITHMS).join(', ')}`);
  return new Rfc2136Provider(credentialsFile, { host, port }, { name, algorithm: algorithm as TsigAlgorithm, secret: Buffer.from(secretText, 'base64') });
}

class Rfc2136Provider implements DnsProvider {
  readonly name = 'rfc2136';

  constructor(
    private readonly credentialsFile: string,
    private readonly server: DnsServer,
    private readonly key: TsigKey,
  ) {}

  present(record: TxtRecord): Promise<void> {
    return this.update(record, { op: 'add', name: record.name, value: record.value, ttl: CHALLENGE_TTL_S });
  }

  cleanup(record: TxtRecord): Promise<void> {
    return this.update(record, { op: 'delete', name: record.name, value: record.value, ttl: 0 });
  }

  renewalParams(): [string, ConfValue][] {
    return [['authenticator', 'dns-rfc2136'], ['dns_rfc2136_credentials', this.credentialsFile]];
  }

  private async update(record: TxtRecord, change: TxtChange): Promise<void> {
    const zone = await this.zoneOf(record.name);
    const { signed, requestMac } = signTsig(buildUpdate(newMessageId(), zone, [change]), this.key);
    const { bytes, parsed } = await exchange(this.server, signed, { tcp: true });
    const at = `${describeServer(this.server)} (zone ${zone}, key ${this.key.name})`;
    if (parsed.rcode !== 0) {
      const advice =
        parsed.rcode === 5
          ? 'the server does not let this key update the zone: check allow-update / update-policy for the key'
          : 'check dns_rfc2136_name, dns_rfc2136_secret and dns_rfc2136_algorithm against the server\'s key, and this host\'s clock';
      throw new ProximationError(
        'ERR_DNS_UPDATE_REFUSED',
        `the DNS server ${at} answered ${rcodeName(parsed.rcode)} to the update ${change.op === 'add' ? 'adding' : 'removing'} TXT ${record.name}: ${advice}.`,
      );
    }
    if (!verifyTsig(bytes, this.key, requestMac)) {
      throw new ProximationError('ERR_DNS_UPDATE_REFUSED', `the answer of ${at} to the update of ${record.name} is not signed with the key; something between here and the server altered it.`);
    }
  }

  /** The zone at the server that holds `name`: the nearest enclosing name it answers SOA for with authority. */
  private async zoneOf(name: string): Promise<string> {
    const labels = name.split('.');
    for (let i = 0; i < labels.length - 1; i++) {
      const candidate = labels.slice(i).join('.');
      const answer = await query(this.server, candidate, TYPE.SOA, false);
      if (answer.rcode === 0 && answer.aa && answer.answers.some((r) => r.type === TYPE.SOA && r.name === candidate)) return candidate;
    }
    throw new ProximationError(
      'ERR_DNS_ZONE_NOT_FOUND',
      `no zone at the DNS server ${describeServer(this.server)} holds ${name} (no SOA answered with authority for it or a parent). ` +
        'Serve the zone there, point dns_rfc2136_server at its primary, or delegate _acme-challenge with a CNAME into a zone it serves.',
    );
  }
}
