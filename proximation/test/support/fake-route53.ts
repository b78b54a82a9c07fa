/**
 * A local stand-in for the Route 53 API (no AWS is reachable from the tests): an HTTP server speaking
 * the REST/XML protocol the AWS SDK uses for the four calls the provider makes (ListHostedZonesByName,
 * ListResourceRecordSets, ChangeResourceRecordSets, GetChange), with Route 53's rules where the provider
 * could get them wrong: a change replaces the whole TXT record set, a DELETE must name the set exactly as
 * it is, ListResourceRecordSets answers from the start name onwards (so a missing name yields the next
 * set, not nothing), and a change is PENDING before it is INSYNC. Every request is recorded (method,
 * URL, headers, body) so tests check what the SDK sent. `onChange` is told each applied record set (the
 * tests mirror it into BIND with nsupdate, so Pebble validates through it). `refuse` makes the next
 * changes fail with AccessDenied, as a task role without the permission would.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';

export interface RecordedRequest {
  method: string;
  url: string;
  headers: http.IncomingHttpHeaders;
  body: string;
}

export interface FakeRoute53 {
  endpoint: string;
  requests: RecordedRequest[];
  /** The TXT values (quoted, as Route 53 keeps them) of each name, without the trailing dot. */
  records: Map<string, string[]>;
  refuse: boolean;
  close(): Promise<void>;
}

const NS = 'https://route53.amazonaws.com/doc/2013-04-01/';

export async function startFakeRoute53(zones: { id: string; name: string; private?: boolean }[], onChange: (name: string, values: string[]) => Promise<void>): Promise<FakeRoute53> {
  const requests: RecordedRequest[] = [];
  const records = new Map<string, { ttl: number; values: string[] }>();
  const changes = new Map<string, number>();
  let serial = 0;
  const state = { refuse: false };
  const xml = (res: http.ServerResponse, status: number, body: string): void => {
    res.writeHead(status, { 'content-type': 'text/xml' });
    res.end(`<?xml version="1.0" encoding="UTF-8"?>\n${body}`);
  };
  const error = (res: http.ServerResponse, status: number, code: string, message: string): void =>
    xml(res, status, `<ErrorResponse xmlns="${NS}"><Error><Type>Sender</Type><Code>${code}</Code><Message>${message}</Message></Error><RequestId>r${++serial}</RequestId></ErrorResponse>`);

  const server = http.createServer((req, res) => {
    let body = '';
    req.on('data', (c: Buffer) => (body += c.toString()));
    req.on('end', () => {
      requests.push({ method: req.method ?? '', url: req.url ?? '', headers: req.headers, body });
      void handle(req, body, res).catch((err: unknown) => error(res, 500, 'InternalFailure', String(err)));
    });
  });

  const handle = async (req: http.IncomingMessage, body: string, res: http.ServerResponse): Promise<void> => {
    const url = new URL(req.url ?? '/', 'http://route53');
    let match: RegExpExecArray | null;
    if (req.method === 'GET' && url.pathname === '/2013-04-01/hostedzonesbyname') {
      const listed = zones
        .map((z) => `<HostedZone><Id>/hostedzone/${z.id}</Id><Name>${z.name}.</Name><CallerReference>c</CallerReference><Config><PrivateZone>${z.private === true}</PrivateZone></Config><ResourceRecordSetCount>2</ResourceRecordSetCount></HostedZone>`)
        .join('');
      xml(res, 200, `<ListHostedZonesByNameResponse xmlns="${NS}"><HostedZones>${listed}</HostedZones><DNSName>${url.searchParams.get('dnsname') ?? ''}</DNSName><IsTruncated>false</IsTruncated><MaxItems>10</MaxItems></ListHostedZonesByNameResponse>`);
    } else if (req.method === 'GET' && (match = /^\/2013-04-01\/hostedzone\/([^/]+)\/rrset$/.exec(url.pathname)) !== null) {
      const start = (url.searchParams.get('name') ?? '').replace(/\.$/, '');
      const found = records.get(start);
      // Route 53 lists from the start name on: without a set there, the next one comes back.
      const set = found === undefined
        ? `<ResourceRecordSet><Name>zzz.${zones[0]!.name}.</Name><Type>A</Type><TTL>300</TTL><ResourceRecords><ResourceRecord><Value>192.0.2.1</Value></ResourceRecord></ResourceRecords></ResourceRecordSet>`
        : `<ResourceRecordSet><Name>${start}.</Name><Type>TXT</Type><TTL>${found.ttl}</TTL><ResourceRecords>${found.values.map((v) => `<ResourceRecord><Value>${v}</Value></ResourceRecord>`).join('')}</ResourceRecords></ResourceRecordSet>`;
      xml(res, 200, `<ListResourceRecordSetsResponse xmlns="${NS}"><ResourceRecordSets>${set}</ResourceRecordSets><IsTruncated>false</IsTruncated><MaxItems>1</MaxItems></ListResourceRecordSetsResponse>`);
    } else if (req.method === 'POST' && /^\/2013-04-01\/hostedzone\/[^/]+\/rrset\/?$/.test(url.pathname)) {
      if (state.refuse) {
        error(res, 403, 'AccessDenied', 'User: arn:aws:sts::123456789012:assumed-role/task/x is not authorized to perform: route53:ChangeResourceRecordSets');
        return;
      }
      const action = /<Action>(\w+)<\/Action>/.exec(body)?.[1];
      const name = /<Name>([^<]+)<\/Name>/.exec(body)?.[1]?.replace(/\.$/, '') ?? '';
      const ttl = Number(/<TTL>(\d+)<\/TTL>/.exec(body)?.[1]);
      const values = [...body.matchAll(/<Value>([^<]*)<\/Value>/g)].map((m) => m[1]!.replaceAll('&quot;', '"'));
      const current = records.get(name);
      if (action === 'DELETE') {
        if (current === undefined || current.ttl !== ttl || current.values.join('\n') !== values.join('\n')) {
          error(res, 400, 'InvalidChangeBatch', `Tried to delete resource record set [name='${name}.', type='TXT'] but the values provided do not match the current values`);
          return;
        }
        records.delete(name);
      } else {
        records.set(name, { ttl, values });
      }
      await onChange(name, action === 'DELETE' ? [] : values);
      const id = `C${++serial}`;
      changes.set(id, 0);
      xml(res, 200, `<ChangeResourceRecordSetsResponse xmlns="${NS}"><ChangeInfo><Id>/change/${id}</Id><Status>PENDING</Status><SubmittedAt>${new Date().toISOString()}</SubmittedAt></ChangeInfo></ChangeResourceRecordSetsResponse>`);
    } else if (req.method === 'GET' && (match = /^\/2013-04-01\/change\/([^/]+)$/.exec(url.pathname)) !== null) {
      const id = match[1]!;
      const polls = changes.get(id);
      if (polls === undefined) {
        error(res, 404, 'NoSuchChange', `no change ${id}`);
        return;
      }
      changes.set(id, polls + 1);
      // The first change is PENDING once, so the provider must wait for INSYNC.
      const status = id === 'C1' && polls === 0 ? 'PENDING' : 'INSYNC';
      xml(res, 200, `<GetChangeResponse xmlns="${NS}"><ChangeInfo><Id>/change/${id}</Id><Status>${status}</Status><SubmittedAt>${new Date().toISOString()}</SubmittedAt></ChangeInfo></GetChangeResponse>`);
    } else {
      error(res, 400, 'InvalidInput', `the fake does not implement ${req.method} ${url.pathname}`);
    }
  };

  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const view = new Map<string, string[]>();
  return {
    endpoint: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    requests,
    get records() {
      view.clear();
      for (const [name, set] of records) view.set(name, set.values);
      return view;
    },
    get refuse() {
      return state.refuse;
    },
    set refuse(value: boolean) {
      state.refuse = value;
    },
    close: () => new Promise((resolve) => server.close(() => resolve())),
  };
}
