import { X509Certificate } from 'node:crypto';
import fs from 'node:fs/promises';
import http from 'node:http';
import https from 'node:https';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { httpRequest, httpsRequest, managed, table, type Proxy } from './support/fixtures.js';
import { scrape, scrapeUntil, value } from './support/metrics.js';

const resources = managed();

const TOKEN = 'metrics-test-token-0123456789';

describe('GET /metrics on the admin listener', () => {
  it('counts requests by site, version and status, times them, and reports generation and certificates', async () => {
    const u = await resources.upstream((req, res) => {
      res.writeHead(req.url === '/missing' ? 404 : 200, { 'content-type': 'text/plain' });
      res.end('ok');
    });
    const p = await resources.proxy(table([{ name: 'app', hosts: ['app.test'], upstreams: [u.origin], version: 'v7' }], 5), { adminToken: TOKEN });

    // One connection kept open, for the connections gauge.
    const agent = new https.Agent({ keepAlive: true, maxSockets: 1 });
    resources.defer(async () => agent.destroy());
    for (let i = 0; i < 3; i++) expect((await httpsRequest(p, 'app.test', { agent })).status).toBe(200);
    expect((await httpsRequest(p, 'app.test', { path: '/missing' })).status).toBe(404);
    // SNI names a served host, Host an unknown one: counted under site="".
    expect((await httpsRequest(p, 'app.test', { headers: { host: 'unknown.test' } })).status).toBe(404);

    const ok = { site: 'app', version: 'v7', status: '200' };
    const samples = await scrapeUntil(p, (s) => value(s, 'proximation_requests_total', ok) === 3 && value(s, 'proximation_requests_total', { site: '' }) === 1);
    expect(value(samples, 'proximation_requests_total', ok)).toBe(3);
    expect(value(samples, 'proximation_requests_total', { site: 'app', version: 'v7', status: '404' })).toBe(1);
    expect(value(samples, 'proximation_requests_total', { site: '', version: '', status: '404' })).toBe(1);
    expect(samples.filter((s) => s.name === 'proximation_requests_total')).toHaveLength(3);

    // The four answered by the upstream are timed; the unknown host is not.
    expect(value(samples, 'proximation_upstream_response_seconds_count', { site: 'app', version: 'v7' })).toBe(4);
    expect(value(samples, 'proximation_upstream_response_seconds_bucket', { site: 'app', version: 'v7', le: '+Inf' })).toBe(4);
    expect(value(samples, 'proximation_upstream_response_seconds_bucket', { site: 'app', version: 'v7', le: '0.005' })).toBeDefined();
    expect(value(samples, 'proximation_upstream_response_seconds_count', { site: '' })).toBeUndefined();
    expect(value(samples, 'proximation_upstream_response_seconds_sum', { site: 'app', version: 'v7' })).toBeGreaterThan(0);

    expect(value(samples, 'proximation_routes_generation')).toBe(5);
    expect(value(samples, 'proximation_active_connections')).toBeGreaterThanOrEqual(1);
    expect(value(samples, 'proximation_websockets_open')).toBe(0);

    const pem = await fs.readFile(path.join(p.config.letsencryptDir, 'live', 'app.test', 'cert.pem'), 'utf8');
    const expected = (new Date(new X509Certificate(pem).validTo).getTime() - Date.now()) / 1000;
    const expiry = value(samples, 'proximation_certificate_expiry_seconds', { name: 'app.test' });
    expect(expiry).toBeGreaterThan(0);
    expect(Math.abs(expiry! - expected)).toBeLessThan(60);
    expect(value(samples, 'proximation_certificate_renewals_total', { result: 'success' })).toBe(1);
    expect(value(samples, 'proximation_certificate_renewals_total', { result: 'failure' })).toBe(0);

    expect(value(samples, 'process_cpu_user_seconds_total')).toBeGreaterThan(0);
    expect(value(samples, 'nodejs_heap_size_used_bytes')).toBeGreaterThan(0);
  });

  it('needs no token when the admin API has one, answers the registry content type, and keeps servers apart', async () => {
    const u = await resources.upstream((_req, res) => res.end('ok'));
    const withToken = await resources.proxy(table([{ name: 'app', hosts: ['app.test'], upstreams: [u.origin] }]), { adminToken: TOKEN });
    const other = await resources.proxy(table([{ name: 'app', hosts: ['app.test'], upstreams: [u.origin] }]));
    await httpsRequest(withToken, 'app.test');

    const res = await scrape(withToken);
    expect(res.status).toBe(200);
    expect(res.headers['content-type']).toMatch(/^text\/plain; version=0\.0\.4/);
    const counted = await scrapeUntil(withToken, (s) => value(s, 'proximation_requests_total', { site: 'app' }) === 1);
    expect(value(counted, 'proximation_requests_total', { site: 'app', status: '200' })).toBe(1);
    // The API itself still wants the token.
    expect((await httpRequest(withToken.server.admin.port, '127.0.0.1', '/api/routes')).status).toBe(401);
    // A second server in the same process has its own registry.
    expect(value((await scrape(other)).samples, 'proximation_requests_total', { site: 'app' })).toBeUndefined();
  });

  it('wants the admin token with PROXIMATION_METRICS_AUTH=on, and by default once the admin listener is not on loopback', async () => {
    const u = await resources.upstream((_req, res) => res.end('ok'));
    const routes = table([{ name: 'app', hosts: ['app.test'], upstreams: [u.origin] }]);
    const withBearer = (p: Proxy, token: string) =>
      new Promise<number>((resolve, reject) => {
        http.get({ host: '127.0.0.1', port: p.server.admin.port, path: '/metrics', headers: { authorization: `Bearer ${token}` }, agent: false }, (res) => {
          res.resume();
          resolve(res.statusCode ?? 0);
        }).on('error', reject);
      });
    for (const settings of [{ metricsAuth: 'on' }, { adminAddress: '0.0.0.0' }]) {
      const p = await resources.proxy(routes, { adminToken: TOKEN, ...settings });
      const anonymous = await scrape(p);
      expect(anonymous.status, JSON.stringify(settings)).toBe(401);
      expect(anonymous.headers['www-authenticate']).toMatch(/^Bearer /);
      expect(await withBearer(p, 'wrong-token-0123456789abcdef')).toBe(401);
      expect(await withBearer(p, TOKEN)).toBe(200);
      // /healthz stays open for load balancers.
      expect((await httpRequest(p.server.admin.port, '127.0.0.1', '/healthz')).status).toBe(200);
    }
    // Off, or on loopback by default, scrapers need nothing.
    for (const settings of [{ metricsAuth: 'off', adminAddress: '0.0.0.0' }, {}]) {
      const p = await resources.proxy(routes, { adminToken: TOKEN, ...settings });
      expect((await scrape(p)).status, JSON.stringify(settings)).toBe(200);
    }
    await expect(resources.proxy(routes, { metricsAuth: 'on' })).rejects.toMatchObject({ code: 'ERR_CONFIG_INVALID', message: expect.stringContaining('PROXIMATION_METRICS_AUTH=on') });
  });
});
