// DNS-01 end to end: Pebble resolves names and TXT records through a real BIND 9 (its -dnsserver), the
// issuer updates BIND over RFC 2136 with TSIG, and what BIND holds and logged is read back by the test
// (dig, BIND's own log of each update). One Pebble per file; tests run one after another.
import { X509Certificate } from 'node:crypto';
import fs from 'node:fs/promises';
import dgram from 'node:dgram';
import path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import type { AcmeIssuerSettings, DnsSettings } from '../../src/certs/acme-issuer.js';
import { CertStore } from '../../src/certs/cert-store.js';
import { readRenewalConf } from '../../src/certs/renewal-conf.js';
import type { Bind } from '../support/bind.js';
import { bindDnsSettings, useBindAndPebble, dns01Issuer, dns01ProxySettings } from '../support/dns01.js';
import { echoHandler, managed, table, tempDir, writeRoutes } from '../support/fixtures.js';
import { acmeProcessEnv, runCertbot, servedCertificate, type Pebble } from '../support/pebble.js';
import { startServeProcess, waitUntil } from '../support/process.js';

const resources = managed();
const the = useBindAndPebble();
let bind: Bind;
let pebble: Pebble;
beforeAll(() => ({ bind, pebble } = the));

/** Updates BIND applied so far, from its own log. */
function updates(): { added: number; deleted: number } {
  const output = bind.output();
  return { added: output.match(/adding an RR at '_acme-challenge/g)?.length ?? 0, deleted: output.match(/deleting an RR at _acme-challenge/g)?.length ?? 0 };
}

async function letsencryptDir(): Promise<string> {
  const dir = await tempDir('proximation-dns01-');
  resources.defer(() => dir.close());
  return path.join(dir.path, 'le');
}

function dnsSettings(propagation: Partial<DnsSettings['propagation']> = {}): DnsSettings {
  return bindDnsSettings(bind, { propagation });
}

const openIssuer = (le: string, settings: Partial<AcmeIssuerSettings> = {}) => dns01Issuer(pebble, bind, le, settings);

const sans = (pem: string): string[] => new X509Certificate(pem).subjectAltName!.split(', ').map((s) => s.replace(/^DNS:/, '')).sort();

describe('DNS-01 over RFC 2136 against Pebble and BIND', () => {
  it('orders several names in one order, a wildcard among them, with one update to present and one to clean up per authorization', async () => {
    const { issuer } = await openIssuer(await letsencryptDir());
    const before = updates();
    const issued = await issuer.issue(['multi.dns.test', '*.multi.dns.test', 'other.dns.test']);
    expect(sans(issued.certPem)).toEqual(['*.multi.dns.test', 'multi.dns.test', 'other.dns.test']);
    expect(updates()).toEqual({ added: before.added + 3, deleted: before.deleted + 3 });
    expect(await bind.txt('_acme-challenge.multi.dns.test')).toEqual([]);
    expect(await bind.txt('_acme-challenge.other.dns.test')).toEqual([]);
    const params = new Map(issued.renewalParams);
    expect([params.get('authenticator'), params.get('dns_rfc2136_credentials'), params.get('pref_challs')]).toEqual(['dns-rfc2136', bind.credentialsFile, ['dns-01']]);
  });

  it('runs concurrent orders in one zone, two of them validated at the same record name', async () => {
    const { manager, store } = await openIssuer(await letsencryptDir());
    const outcomes = await Promise.all(['p.dns.test', '*.p.dns.test', 'q.dns.test'].map((host) => manager.renew(host, { force: false, dryRun: false })));
    expect(outcomes.map((o) => o.status)).toEqual(['renewed', 'renewed', 'renewed']);
    expect((await store.read('_wildcard.p.dns.test'))!.names).toEqual(['*.p.dns.test']);
    expect(await bind.txt('_acme-challenge.p.dns.test')).toEqual([]);
  });

  it('serves a certificate obtained over DNS-01 and writes a renewal file that certbot lists', async () => {
    const le = await letsencryptDir();
    const upstream = await resources.upstream(echoHandler());
    const proxy = await resources.proxy(table([{ name: 'web', hosts: ['web.dns.test'], upstreams: [upstream.origin] }]), { ...dns01ProxySettings(pebble, bind, le), acmeChallenge: 'dns-01' });
    const leaf = await servedCertificate(pebble, 'web.dns.test', proxy.server.https.port);
    expect(leaf.subjectAltName).toBe('DNS:web.dns.test');
    const conf = await readRenewalConf(new CertStore(le), 'web.dns.test');
    expect(conf!.params.get('authenticator')).toBe('dns-rfc2136');
    const listing = await runCertbot(pebble, le, 'certificates');
    expect(listing).toMatch(/Certificate Name: web\.dns\.test\n\s+Serial Number: \w+\n\s+Key Type: ECDSA\n\s+Domains: web\.dns\.test/);
    expect(listing).not.toMatch(/renewal configuration file .* is broken/i);
  });

  it('serves a wildcard host whose site chose dns-01 while the proxy validates others over http-01', async () => {
    const le = await letsencryptDir();
    const upstream = await resources.upstream((_req, res) => res.end('wild'));
    const routes = table([{ name: 'wild', hosts: ['*.wild.dns.test'], upstreams: [upstream.origin] }]);
    const proxy = await resources.proxy({ ...routes, sites: routes.sites.map((site) => ({ ...site, challenge: 'dns-01' as const })) }, dns01ProxySettings(pebble, bind, le));
    const leaf = await servedCertificate(pebble, 'anything.wild.dns.test', proxy.server.https.port);
    expect(leaf.subjectAltName).toBe('DNS:*.wild.dns.test');
    expect((await servedCertificate(pebble, 'other.wild.dns.test', proxy.server.https.port)).serialNumber).toBe(leaf.serialNumber);
    expect((await readRenewalConf(new CertStore(le), '_wildcard.wild.dns.test'))!.params.get('pref_challs')).toEqual(['dns-01']);
  });

  it('renews a lineage certbot obtained with its dns-rfc2136 plugin with the same server and key, whatever the configured challenge', async () => {
    const le = await letsencryptDir();
    await runCertbot(pebble, le, 'certonly', '--server', pebble.directoryUrl, '--agree-tos', '--register-unsafely-without-email',
      '--authenticator', 'dns-rfc2136', '--dns-rfc2136-credentials', bind.credentialsFile, '--dns-rfc2136-propagation-seconds', '1',
      '-d', 'cb.dns.test');
    const { manager, store } = await openIssuer(le, { challenge: 'http-01', dns: bindDnsSettings(bind, { provider: undefined }) });
    const certbotSerial = (await store.read('cb.dns.test'))!.serialNumber;
    const before = updates();
    const outcome = await manager.renew('cb.dns.test', { force: true, dryRun: false });
    expect(outcome.status).toBe('renewed');
    expect((await store.read('cb.dns.test'))!.serialNumber).not.toBe(certbotSerial);
    expect(updates()).toEqual({ added: before.added + 1, deleted: before.deleted + 1 });
    expect((await readRenewalConf(store, 'cb.dns.test'))!.params.get('dns_rfc2136_credentials')).toBe(bind.credentialsFile);
    // And certbot can still renew what we wrote, with its plugin.
    expect(await runCertbot(pebble, le, 'renew', '--cert-name', 'cb.dns.test', '--force-renewal', '--no-random-sleep-on-renew', '--dns-rfc2136-propagation-seconds', '1')).toContain('all renewals succeeded');
  });

  it('fails an order whose update is refused or never propagates: a clear error, records removed, backoff recorded, the served certificate kept', async () => {
    const le = await letsencryptDir();
    const good = await openIssuer(le);
    expect((await good.manager.renew('keep.dns.test', { force: false, dryRun: false })).status).toBe('renewed');
    const served = (await good.store.read('keep.dns.test'))!.serialNumber;

    const wrongSecret = path.join(path.dirname(le), 'wrong.ini');
    await fs.writeFile(wrongSecret, (await fs.readFile(bind.credentialsFile, 'utf8')).replace(/^dns_rfc2136_secret = .*$/m, `dns_rfc2136_secret = ${Buffer.alloc(32, 1).toString('base64')}`));
    // The lineage names its provider; the configured one is a fallback, so the wrong key goes in the renewal file.
    await fs.writeFile(path.join(le, 'renewal', 'keep.dns.test.conf'), (await fs.readFile(path.join(le, 'renewal', 'keep.dns.test.conf'), 'utf8')).replace(bind.credentialsFile, wrongSecret));
    const refused = await good.manager.renew('keep.dns.test', { force: true, dryRun: false });
    expect(refused).toMatchObject({ status: 'failed', backoff: { failures: 1 } });
    expect((refused as { error: string }).error).toMatch(new RegExp(`the DNS server 127\\.0\\.0\\.1:${bind.port} .* answered BADSIG`));
    expect((await good.store.read('keep.dns.test'))!.serialNumber).toBe(served);

    await fs.writeFile(path.join(le, 'renewal', 'keep.dns.test.conf'), (await fs.readFile(path.join(le, 'renewal', 'keep.dns.test.conf'), 'utf8')).replace(wrongSecret, bind.credentialsFile));
    const silentServer = dgram.createSocket('udp4');
    await new Promise<void>((resolve) => silentServer.bind(0, '127.0.0.1', resolve));
    resources.defer(async () => void silentServer.close());
    const stuck = await openIssuer(le, { dns: dnsSettings({ authoritativePort: silentServer.address().port, timeoutMs: 1500 }) });
    const timedOut = await stuck.manager.renew('keep.dns.test', { force: true, dryRun: false });
    expect(timedOut).toMatchObject({ status: 'failed', backoff: { failures: 2 } });
    expect((timedOut as { error: string }).error).toContain('was not answered by 127.0.0.1');
    expect(await bind.txt('_acme-challenge.keep.dns.test')).toEqual([]);
    expect(await fs.readdir(path.join(le, 'proximation', 'dns01', 'keep.dns.test'))).toEqual([]);
    expect((await good.store.read('keep.dns.test'))!.serialNumber).toBe(served);
  });

  it('removes the record a process killed between present and cleanup left, on the next order', async () => {
    const le = await letsencryptDir();
    const routes = path.join(le, 'proximation', 'routes.json');
    const upstream = await resources.upstream(echoHandler());
    await writeRoutes(routes, table([{ name: 'crash', hosts: ['crash.dns.test'], upstreams: [upstream.origin] }]));
    const silentServer = dgram.createSocket('udp4');
    await new Promise<void>((resolve) => silentServer.bind(0, '127.0.0.1', resolve));
    resources.defer(async () => void silentServer.close());
    const env = {
      ...acmeProcessEnv(pebble, le),
      PROXIMATION_ACME_CHALLENGE: 'dns-01',
      PROXIMATION_DNS_PROVIDER: 'rfc2136',
      PROXIMATION_DNS_RFC2136_CREDENTIALS: bind.credentialsFile,
      PROXIMATION_DNS_RESOLVERS: `127.0.0.1:${bind.port}`,
    };
    // Its propagation check asks a server that never answers: the process stays between present and cleanup.
    const first = await startServeProcess(le, { ...env, PROXIMATION_DNS_AUTHORITATIVE_PORT: String(silentServer.address().port), PROXIMATION_DNS_PROPAGATION_TIMEOUT: '10m' });
    await waitUntil(async () => (await bind.txt('_acme-challenge.crash.dns.test')).length === 1, 'the first process to present its record', 30_000, 100);
    await first.kill();
    expect(await fs.readdir(path.join(le, 'proximation', 'dns01', 'crash.dns.test'))).toHaveLength(1);

    // The handshake below is held until the certificate is there, past the default 10 s handshake timeout.
    const second = await startServeProcess(le, { ...env, PROXIMATION_DNS_AUTHORITATIVE_PORT: String(bind.port), PROXIMATION_TLS_HANDSHAKE_TIMEOUT: '2m' });
    resources.defer(() => second.kill());
    // The lock the killed process held goes stale first (two refresh periods), then the order runs.
    const leaf = await servedCertificate(pebble, 'crash.dns.test', second.ports.https);
    expect(leaf.subjectAltName).toBe('DNS:crash.dns.test');
    expect(await bind.txt('_acme-challenge.crash.dns.test')).toEqual([]);
    expect(await fs.readdir(path.join(le, 'proximation', 'dns01', 'crash.dns.test'))).toEqual([]);
    expect(second.cli.stderr() + second.cli.stdout()).toContain('removed a DNS-01 record an interrupted order left');
  });
});
