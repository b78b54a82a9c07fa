/**
 * Workers with the ACME issuer against a real Pebble: the primary orders, a worker answers Pebble's
 * HTTP-01 validation from the token the primary wrote, and every worker serves the certificate.
 */
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { httpRequest, httpsRequest, managed, table, tempDir, writeRoutes, type Proxy } from '../support/fixtures.js';
import { PEBBLE_PORTS, acmeProcessEnv, servedCertificate, usePebble } from '../support/pebble.js';
import { freePorts, spawnCli, waitUntil } from '../support/process.js';

const resources = managed();
const pebble = usePebble();

describe('several workers with the ACME issuer', () => {
  it('orders once in the primary, answers the HTTP-01 validation in a worker, and serves the certificate from every worker', async () => {
    const upstream = await resources.upstream((_req, res) => res.end('acme ok'));
    const dir = await tempDir();
    resources.defer(() => dir.close());
    const le = path.join(dir.path, 'le');
    await writeRoutes(path.join(le, 'proximation', 'routes.json'), table([{ name: 'wk', hosts: ['wk.test'], upstreams: [upstream.origin] }]));
    const [admin] = (await freePorts(1)) as [number];
    const cli = spawnCli(['serve', '--workers', '2'], {
      ...acmeProcessEnv(pebble(), le),
      PROXIMATION_HTTP_PORT: String(PEBBLE_PORTS.http01),
      PROXIMATION_HTTPS_PORT: String(PEBBLE_PORTS.tlsAlpn01),
      PROXIMATION_ADMIN_PORT: String(admin),
      PROXIMATION_LISTEN_ADDRESS: '127.0.0.1',
      PROXIMATION_LOG_FORMAT: 'json',
    });
    resources.defer(async () => {
      cli.child.kill('SIGKILL');
      await cli.exited;
    });
    await waitUntil(async () => (await httpRequest(admin, 'localhost', '/healthz').catch(() => undefined))?.status === 200, 'both workers to serve', 20_000);
    await waitUntil(async () => (await servedCertificate(pebble(), 'wk.test').catch(() => undefined)) !== undefined, 'a certificate from Pebble for wk.test', 30_000);

    const serials = new Set<string>();
    for (let i = 0; i < 10; i++) serials.add((await servedCertificate(pebble(), 'wk.test')).serialNumber);
    expect(serials.size, 'every handshake got the one certificate').toBe(1);
    const target = { ca: pebble().rootPem, server: { https: { port: PEBBLE_PORTS.tlsAlpn01 } } } as Proxy;
    for (let i = 0; i < 10; i++) expect((await httpsRequest(target, 'wk.test')).body).toBe('acme ok');

    const lines = cli.stdout().trim().split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as Record<string, unknown>);
    await waitUntil(() => new Set(lines.filter((l) => l.part === 'access' && l.host === 'wk.test').map((l) => l.worker)).size === 2, 'access lines of both workers', 5000);
    const orders = lines.filter((l) => l.msg === 'issuing certificate');
    expect(orders).toHaveLength(1);
    expect(orders[0]).not.toHaveProperty('worker');
    const answered = lines.filter((l) => l.msg === 'answering an HTTP-01 challenge');
    expect(answered.length).toBeGreaterThan(0);
    expect(answered.every((l) => typeof l.worker === 'number'), 'the validations were answered by workers').toBe(true);
  }, 90_000);
});
