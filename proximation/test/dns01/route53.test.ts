// The Route 53 provider through the real AWS SDK, pointed (AWS_ENDPOINT_URL_ROUTE_53) at a local
// stand-in for the API that records what the SDK sends and mirrors each change into a real BIND 9, so
// Pebble validates the records the provider put up. Contract-tested only: no AWS is reachable here.
import { X509Certificate } from 'node:crypto';
import path from 'node:path';
import { execFile } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startBind, type Bind } from '../support/bind.js';
import { bindDnsSettings, dns01Issuer } from '../support/dns01.js';
import { startFakeRoute53, type FakeRoute53 } from '../support/fake-route53.js';
import { managed, tempDir } from '../support/fixtures.js';
import { PEBBLE_WAIT_MS, startPebble, type Pebble } from '../support/pebble.js';

const resources = managed();
const AWS_ENV = { AWS_ENDPOINT_URL_ROUTE_53: '', AWS_ACCESS_KEY_ID: 'AKIDPROXIMATIONTEST', AWS_SECRET_ACCESS_KEY: 'test-secret', AWS_REGION: 'us-east-1' };
const saved: Record<string, string | undefined> = {};
let bind: Bind;
let pebble: Pebble;
let route53: FakeRoute53;

/** Mirrors a record set into BIND with nsupdate, the server's own tool. */
function mirror(name: string, values: string[]): Promise<void> {
  const adds = values.map((v) => `update add ${name}. 60 TXT ${v}\n`).join('');
  return new Promise((resolve, reject) => {
    const child = execFile('nsupdate', ['-y', `hmac-sha256:${bind.keyName}:${bind.secret}`], (err) => (err ? reject(err) : resolve()));
    child.stdin!.end(`server 127.0.0.1 ${bind.port}\nzone dns.test\nupdate delete ${name}. TXT\n${adds}send\n`);
  });
}

beforeAll(async () => {
  bind = await startBind();
  route53 = await startFakeRoute53([{ id: 'ZPRIVATE', name: 'dns.test', private: true }, { id: 'Z0DNSTEST', name: 'dns.test' }], mirror);
  for (const [key, value] of Object.entries({ ...AWS_ENV, AWS_ENDPOINT_URL_ROUTE_53: route53.endpoint })) {
    saved[key] = process.env[key];
    process.env[key] = value;
  }
  pebble = await startPebble({ dnsServer: `127.0.0.1:${bind.port}`, env: { PEBBLE_AUTHZREUSE: '0' } });
}, PEBBLE_WAIT_MS);
afterAll(async () => {
  for (const [key, value] of Object.entries(saved)) {
    if (value === undefined) delete process.env[key];
    else process.env[key] = value;
  }
  await pebble?.close();
  await route53?.close();
  await bind?.close();
});

async function route53Issuer() {
  const dir = await tempDir('proximation-route53-');
  resources.defer(() => dir.close());
  const dns = bindDnsSettings(bind, { provider: { type: 'route53' }, propagation: { timeoutMs: 20_000 } });
  return (await dns01Issuer(pebble, bind, path.join(dir.path, 'le'), { dns })).issuer;
}

describe('DNS-01 through Route 53 (contract-tested against a local endpoint)', () => {
  it('UPSERTs the value into the public zone\'s TXT set next to another at the same name, waits for INSYNC, and DELETEs the set when the last goes', async () => {
    const issuer = await route53Issuer();
    const issued = await issuer.issue(['r53.dns.test', '*.r53.dns.test']);
    expect(new X509Certificate(issued.certPem).subjectAltName).toBe('DNS:r53.dns.test, DNS:*.r53.dns.test');
    expect(new Map(issued.renewalParams).get('authenticator')).toBe('dns-route53');

    const changes = route53.requests.filter((r) => r.method === 'POST');
    expect(changes.every((r) => r.url === '/2013-04-01/hostedzone/Z0DNSTEST/rrset')).toBe(true);
    const actions = changes.map((r) => [/<Action>(\w+)</.exec(r.body)![1], [...r.body.matchAll(/<Value>/g)].length]);
    // Both values at one name: added one after the other (the second set holds both), removed likewise.
    expect(actions).toEqual([['UPSERT', 1], ['UPSERT', 2], ['UPSERT', 1], ['DELETE', 1]]);
    expect(changes[1]!.body).toMatch(/<Name>_acme-challenge\.r53\.dns\.test\.<\/Name><Type>TXT<\/Type><TTL>60<\/TTL>/);
    expect(route53.records.has('_acme-challenge.r53.dns.test')).toBe(false);
    expect(await bind.txt('_acme-challenge.r53.dns.test')).toEqual([]);
    // The first change was PENDING once: it was asked about again until INSYNC.
    expect(route53.requests.filter((r) => r.url === '/2013-04-01/change/C1')).toHaveLength(2);
    // Signed the SDK's way, with the credentials of the environment.
    expect(changes[0]!.headers.authorization).toMatch(/^AWS4-HMAC-SHA256 Credential=AKIDPROXIMATIONTEST\/\d{8}\/us-east-1\/route53\/aws4_request, SignedHeaders=.*, Signature=[0-9a-f]{64}$/);
  });

  it('reports a zone it cannot find and a change the role may not make, naming them', async () => {
    const issuer = await route53Issuer();
    await expect(issuer.issue(['x.elsewhere.test'])).rejects.toThrow(/no public Route 53 hosted zone of this account holds _acme-challenge\.x\.elsewhere\.test/);
    route53.refuse = true;
    try {
      await expect(issuer.issue(['denied.dns.test'])).rejects.toMatchObject({
        code: 'ERR_DNS_PROVIDER',
        message: expect.stringMatching(/Route 53 refused changing TXT _acme-challenge\.denied\.dns\.test in zone dns\.test\. \(Z0DNSTEST\): AccessDenied: .*route53:ChangeResourceRecordSets/),
      });
    } finally {
      route53.refuse = false;
    }
  });
});
