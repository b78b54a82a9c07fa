import net from 'node:net';
import { describe, expect, it } from 'vitest';
import { TOKEN, apiRequest } from '../admin/api-request.js';
import { httpsRequest, managed, table } from '../support/fixtures.js';
import { scrapeUntil, value } from '../support/metrics.js';

const resources = managed();

async function closedPort(): Promise<number> {
  return new Promise((resolve) => {
    const s = net.createServer().listen(0, '127.0.0.1', () => {
      const { port } = s.address() as net.AddressInfo;
      s.close(() => resolve(port));
    });
  });
}

it('spreads requests round-robin over the active version\'s upstreams', async () => {
  const a = await resources.upstream((_req, res) => res.end('a'));
  const b = await resources.upstream((_req, res) => res.end('b'));
  const proxy = await resources.proxy(table([{ name: 'app', hosts: ['app.test'], upstreams: [a.origin, b.origin] }]));
  const bodies: string[] = [];
  for (let i = 0; i < 6; i++) bodies.push((await httpsRequest(proxy, 'app.test')).body);
  expect(bodies.filter((x) => x === 'a')).toHaveLength(3);
  expect(bodies.filter((x) => x === 'b')).toHaveLength(3);
});

// The HTTP/1.1 and the HTTP/2 pool fail alike (ERR_UPSTREAM_CONNECT), so ejection and metrics do not depend on the protocol.
describe.each(['http', 'h2c'] as const)('an upstream over %s that refuses connections', (protocol) => {
  it('is skipped by a retry of a request without a body, ejected, and its requests counted as any', async () => {
    let hits = 0;
    const live = await resources.answeringUpstream(protocol, () => {
      hits++;
      return [200, 'live'];
    });
    const dead = `${protocol}://127.0.0.1:${await closedPort()}`;
    const proxy = await resources.proxy(table([{ name: 'app', hosts: ['app.test'], upstreams: [dead, live.origin] }]), { adminToken: TOKEN });
    const statuses: number[] = [];
    for (let i = 0; i < 8; i++) statuses.push((await httpsRequest(proxy, 'app.test', { path: `/r${i}` })).status);
    expect(statuses).toEqual(Array(8).fill(200));
    expect(hits).toBe(8);
    // The first request met the dead upstream and went on to the live one; the dead one was then out of rotation.
    const first = await proxy.waitForLog((l) => l.part === 'access' && l.path === '/r0');
    expect(first.upstream).toBe(live.origin);
    const members = (await apiRequest(proxy, 'GET', '/api/overview')).json.sites[0].versions[0].members as { upstream: string; health: string }[];
    expect(Object.fromEntries(members.map((m) => [m.upstream, m.health]))).toEqual({ [dead]: 'ejected', [live.origin]: 'up' });
    const samples = await scrapeUntil(proxy, (got) => value(got, 'proximation_upstream_response_seconds_count', { site: 'app' }) === 8);
    expect(value(samples, 'proximation_requests_total', { site: 'app', status: '200' })).toBe(8);
    expect(value(samples, 'proximation_upstream_response_seconds_count', { site: 'app' })).toBe(8);
  });
});

it('does not retry a request whose body may already be on its way', async () => {
  const dead = `http://127.0.0.1:${await closedPort()}`;
  let hits = 0;
  const live = await resources.upstream((req, res) => {
    hits++;
    req.resume().on('end', () => res.end());
  });
  const proxy = await resources.proxy(table([{ name: 'app', hosts: ['app.test'], upstreams: [dead, live.origin] }]));
  const res = await httpsRequest(proxy, 'app.test', { method: 'POST', body: 'x'.repeat(1000) });
  expect(res.status).toBe(502);
  expect(hits).toBe(0);
});
