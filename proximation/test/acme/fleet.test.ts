// Several proxy instances on one certbot directory against a real ACME CA (Pebble): one order per name,
// challenges answered by whichever instance Pebble reaches, recovery from kill -9 mid-order, and
// lineages certbot created. Pebble validates only on PEBBLE_PORTS.http01/tlsAlpn01, so instance "A" owns
// those ports and its peers listen elsewhere; the tests run one after another.
import { X509Certificate } from 'node:crypto';
import fs from 'node:fs/promises';
import net from 'node:net';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import type { Config } from '../../src/config.js';
import { echoHandler, managed, table, tempDir, writeRoutes, type Proxy } from '../support/fixtures.js';
import { PEBBLE_PORTS, acmeProcessEnv, runCertbot, servedCertificate, usePebble } from '../support/pebble.js';
import { freePorts, spawnCli, waitUntil, within, type CliProcess } from '../support/process.js';

const resources = managed();
const pebble = usePebble();

async function letsencryptDir(): Promise<string> {
  const dir = await tempDir('proximation-fleet-');
  resources.defer(() => dir.close());
  return path.join(dir.path, 'le');
}

const siteOf = (host: string): string => host.split('.')[0]!;

function acmeSettings(le: string): Partial<Record<keyof Config, string>> {
  return {
    letsencryptDir: le,
    issuer: 'acme',
    acmeDirectory: pebble().directoryUrl,
    acmeCaCerts: pebble().caCertsPath,
    certPollMs: '200ms',
  };
}

/** Instance A listens where Pebble validates; others (`onPebblePorts: false`) on ephemeral ports. */
async function instance(le: string, hosts: string[], options: { onPebblePorts: boolean; routesPath?: string }): Promise<Proxy> {
  const upstream = await resources.upstream(echoHandler());
  const ports = options.onPebblePorts ? { httpPort: String(PEBBLE_PORTS.http01), httpsPort: String(PEBBLE_PORTS.tlsAlpn01) } : {};
  return resources.proxy(table(hosts.map((host) => ({ name: siteOf(host), hosts: [host], upstreams: [upstream.origin] }))), {
    ...acmeSettings(le),
    ...ports,
    ...(options.routesPath !== undefined ? { routesPath: options.routesPath } : {}),
  });
}

const handshake = (port: number, host: string): Promise<X509Certificate> => servedCertificate(pebble(), host, port);

async function certFiles(le: string, host: string): Promise<string[]> {
  return (await fs.readdir(path.join(le, 'archive', host))).filter((f) => f.startsWith('cert')).sort();
}

const certbot = (le: string, ...args: string[]): Promise<string> => runCertbot(pebble(), le, ...args);

const issuing = (p: Proxy): Record<string, unknown>[] => p.logs.filter((l) => l.msg === 'issuing certificate');

describe('a fleet of proxies on one directory, against Pebble', () => {
  it('obtains each certificate once for three instances, and all three serve it', async () => {
    const le = await letsencryptDir();
    const hosts = ['fa.test', 'fb.test', 'fc.test'];
    // A answers Pebble's validations for everyone; it routes nothing yet, so B and C race for every lock.
    const routesA = path.join(path.dirname(le), 'routes-a.json');
    const a = await instance(le, [], { onPebblePorts: true, routesPath: routesA });
    const [b, c] = await Promise.all(
      ['b', 'c'].map((id) => instance(le, hosts, { onPebblePorts: false, routesPath: path.join(path.dirname(le), `routes-${id}.json`) })),
    ) as [Proxy, Proxy];
    const served = new Map<string, string>();
    for (const host of hosts) {
      const fromB = await handshake(b.server.https.port, host);
      expect(fromB.subjectAltName).toBe(`DNS:${host}`);
      expect((await handshake(c.server.https.port, host)).serialNumber).toBe(fromB.serialNumber);
      served.set(host, fromB.serialNumber);
    }
    // Now A routes them too: it loads what the others stored instead of ordering.
    const upstream = await resources.upstream(echoHandler());
    await writeRoutes(routesA, table(hosts.map((host) => ({ name: siteOf(host), hosts: [host], upstreams: [upstream.origin] })), 2));
    await a.waitForLog((l) => l.msg === 'routing table loaded' && l.generation === 2);
    for (const host of hosts) expect((await handshake(PEBBLE_PORTS.tlsAlpn01, host)).serialNumber).toBe(served.get(host));

    for (const host of hosts) expect(await certFiles(le, host)).toEqual(['cert1.pem']);
    const orders = [...issuing(b), ...issuing(c)].map((l) => l.host).sort();
    expect(orders).toEqual(hosts);
    expect(issuing(a)).toEqual([]);
  });

  it('the instance that did not start the order answers its challenge from the shared store', async () => {
    const le = await letsencryptDir();
    const routesA = path.join(path.dirname(le), 'routes-a.json');
    const a = await instance(le, [], { onPebblePorts: true, routesPath: routesA });
    const b = await instance(le, ['ga.test'], { onPebblePorts: false });
    const leaf = await handshake(b.server.https.port, 'ga.test');
    expect(leaf.subjectAltName).toBe('DNS:ga.test');
    expect(issuing(b)).toMatchObject([{ host: 'ga.test' }]);
    // B placed the token; Pebble reached A, which found it in the shared store.
    expect(a.logs.filter((l) => l.msg === 'answering an HTTP-01 challenge').length).toBeGreaterThanOrEqual(1);
    expect(b.logs.filter((l) => l.msg === 'answering an HTTP-01 challenge')).toEqual([]);
    expect(issuing(a)).toEqual([]);
    expect(await certFiles(le, 'ga.test')).toEqual(['cert1.pem']);
  });

  it('kill -9 in the middle of an order leaves a usable store, and the next process completes it', async () => {
    const le = await letsencryptDir();
    await writeRoutes(path.join(le, 'proximation', 'routes.json'), table([{ name: 'ka', hosts: ['ka.test'], upstreams: ['http://127.0.0.1:9'] }]));
    // Pebble's validation connects to a listener that never answers: the order stays in flight.
    const sockets = new Set<net.Socket>();
    const silent = net.createServer((socket) => sockets.add(socket));
    await new Promise<void>((resolve) => silent.listen(PEBBLE_PORTS.http01, '127.0.0.1', resolve));
    const closeSilent = (): Promise<void> => new Promise((resolve) => {
      for (const s of sockets) s.destroy();
      silent.close(() => resolve());
    });
    resources.defer(async () => {
      if (silent.listening) await closeSilent();
    });
    const env = {
      ...acmeProcessEnv(pebble(), le),
      PROXIMATION_CERT_POLL: '200ms',
      PROXIMATION_LISTEN_ADDRESS: '127.0.0.1',
      PROXIMATION_LOG_FORMAT: 'json',
    };
    const serve = (ports: { http: number; https: number; admin: number }): CliProcess => {
      const cli = spawnCli(['serve'], { ...env, PROXIMATION_HTTP_PORT: String(ports.http), PROXIMATION_HTTPS_PORT: String(ports.https), PROXIMATION_ADMIN_PORT: String(ports.admin) });
      resources.defer(async () => {
        cli.child.kill('SIGKILL');
        await cli.exited;
      });
      return cli;
    };
    const [http, https, admin] = (await freePorts(3)) as [number, number, number];
    const first = serve({ http, https, admin });
    await waitUntil(() => first.stdout().includes('"msg":"issuing certificate"'), 'the first process to start its order', 10_000);
    await waitUntil(() => sockets.size > 0, "Pebble's validation to reach the silent listener", 10_000);
    first.child.kill('SIGKILL');
    expect((await first.exited).signal).toBe('SIGKILL');
    await closeSilent();
    // The dead order left its challenge token behind, and no lineage: nothing half-written to serve.
    expect(await fs.readdir(path.join(le, 'proximation', 'challenges', 'http-01'))).toHaveLength(1);
    await expect(fs.readdir(path.join(le, 'live'))).rejects.toThrow();
    expect(await certbot(le, 'certificates')).not.toMatch(/warning|invalid|skipping|error/i);

    // A new process where Pebble validates: it takes the lock over once the dead holder's lease is stale
    // (2 refreshes of 5 s), orders, and ends with a lineage certbot lists.
    const [admin2] = (await freePorts(1)) as [number];
    const second = serve({ http: PEBBLE_PORTS.http01, https: PEBBLE_PORTS.tlsAlpn01, admin: admin2 });
    await waitUntil(async () => (await certFiles(le, 'ka.test').catch(() => [])).length > 0, 'the second process to store the certificate', 30_000);
    const leaf = await within(handshake(PEBBLE_PORTS.tlsAlpn01, 'ka.test'), 5000, 'the second process to serve ka.test');
    expect(leaf.subjectAltName).toBe('DNS:ka.test');
    expect(second.stdout()).toContain('"msg":"issuing certificate"');
    expect(await certFiles(le, 'ka.test')).toEqual(['cert1.pem']);
    const listing = await certbot(le, 'certificates');
    expect(listing).toMatch(/Certificate Name: ka\.test\n\s+Serial Number: \w+\n\s+Key Type: ECDSA\n\s+Domains: ka\.test\n\s+Expiry Date: .* \(VALID: 89 days\)/);
    expect(listing).not.toMatch(/warning|invalid|skipping|error/i);
  }, 60_000);

  it('serves a lineage certbot created and renews it with `proximation renew`', async () => {
    const le = await letsencryptDir();
    // certbot's own standalone server answers on the port Pebble validates, before any proxy holds it.
    await certbot(le, 'certonly', '--standalone', '--http-01-port', String(PEBBLE_PORTS.http01), '--server', pebble().directoryUrl,
      '--agree-tos', '--register-unsafely-without-email', '-d', 'cb.test');
    expect(await certFiles(le, 'cb.test')).toEqual(['cert1.pem']);
    const certbotSerial = new X509Certificate(await fs.readFile(path.join(le, 'live', 'cb.test', 'cert.pem'))).serialNumber;

    const a = await instance(le, ['cb.test'], { onPebblePorts: true });
    expect((await handshake(PEBBLE_PORTS.tlsAlpn01, 'cb.test')).serialNumber).toBe(certbotSerial);
    expect(issuing(a)).toEqual([]);

    const renew = spawnCli(['renew', '--force-renewal', '--cert-name', 'cb.test'], {
      ...acmeProcessEnv(pebble(), le),
      PROXIMATION_LOG_FORMAT: 'json',
    });
    expect((await renew.exited).code, renew.stderr()).toBe(0);
    expect(await certFiles(le, 'cb.test')).toEqual(['cert1.pem', 'cert2.pem']);
    expect(await fs.readlink(path.join(le, 'live', 'cb.test', 'cert.pem'))).toBe('../../archive/cb.test/cert2.pem');
    // The running proxy answered the renewal's challenge and picks the new certificate up by polling.
    await waitUntil(async () => (await handshake(PEBBLE_PORTS.tlsAlpn01, 'cb.test')).serialNumber !== certbotSerial, 'the proxy to serve the renewed certificate');
    const listing = await certbot(le, 'certificates');
    expect(listing).toMatch(/Certificate Name: cb\.test\n\s+Serial Number: \w+\n\s+Key Type: \w+\n\s+Domains: cb\.test\n\s+Expiry Date: .* \(VALID: 89 days\)/);
    expect(listing).not.toMatch(/warning|invalid|skipping|error/i);
  });
});
