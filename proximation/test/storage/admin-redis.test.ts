// The admin API of a `proximation serve` whose state is on a real redis-server: the routing API reads
// and changes the table in Redis (under its lock, with the change log beside it in Redis), and
// GET /api/status answers the fleet from the heartbeats and leases in Redis; a second instance on the
// same Redis sees the change and shows up in the status, which `proximation status` reads from Redis too.
import { ROUTES_KEY, addSite, readChangeLog, readRoutingTable, updateRoutingTable } from '@proximation/shared';
import { describe, expect, it } from 'vitest';
import { useRedisServer } from '../../../shared/test/redis-server.js';
import { TOKEN, apiRequest } from '../admin/api-request.js';
import { httpsRequest, managed, type Proxy } from '../support/fixtures.js';
import { runMain, waitUntil } from '../support/process.js';
import { redisFleet } from '../support/redis-fleet.js';

const resources = managed();

describe('the admin API on Redis', () => {
  const redis = useRedisServer();

  it('changes the table in Redis, logs the change there, and answers the status of both instances', async () => {
    const { env, storage, serve } = await redisFleet(resources, redis());
    await updateRoutingTable(storage, ROUTES_KEY, (t) => addSite(t, { name: 'dev', hosts: ['dev.example.com'] }));
    const upstream = await resources.upstream((_req, res) => res.end('v1'));
    const [a, b] = await Promise.all([serve({ PROXIMATION_ADMIN_TOKEN: TOKEN }), serve()]);
    const admin = { server: { admin: { port: a.ports.admin } } } as unknown as Proxy;

    const change = { op: 'registerVersion', site: 'dev', version: 'v1', upstreams: [upstream.origin], activate: true };
    const answer = await apiRequest(admin, 'POST', '/api/routes/changes', { body: { change }, headers: { 'proximation-actor-user': 'ops' } });
    expect(answer.status).toBe(200);
    expect(answer.json).toMatchObject({ changed: true, table: { generation: 2, sites: [{ activeVersion: 'v1' }] } });
    expect(await readRoutingTable(storage, ROUTES_KEY)).toEqual(answer.json.table);
    const routes = await apiRequest(admin, 'GET', '/api/routes');
    expect([routes.headers.etag, routes.json.generation]).toEqual(['"2"', 2]);
    expect((await readChangeLog({ storage, key: ROUTES_KEY })).map((e) => [e.generation, e.op, e.by.user, e.by.via])).toEqual([[2, 'registerVersion', 'ops', 'admin-api']]);

    // Both serve it; their heartbeats in Redis say so, as the status of either would.
    for (const proxy of [a, b]) expect((await httpsRequest(proxy.target, 'dev.example.com')).body).toBe('v1');
    await waitUntil(async () => {
      const status = await apiRequest(admin, 'GET', '/api/status');
      return status.json.instances.length === 2 && status.json.instances.every((i: { routesGeneration: number }) => i.routesGeneration === 2);
    }, 'both heartbeats at generation 2 in GET /api/status', 20_000);
    const status = await apiRequest(admin, 'GET', '/api/status');
    expect(status.json.sites).toMatchObject([{ name: 'dev', activeVersion: 'v1', versions: [{ name: 'v1', members: [{ upstream: upstream.origin }] }] }]);
    expect(await storage.list('proximation/instances')).toHaveLength(2);
    // proximation status reads the same records from Redis.
    const cli = await runMain(['status', '--json'], env);
    expect(cli.code, cli.err).toBe(0);
    expect((JSON.parse(cli.out) as { instances: unknown[] }).instances).toHaveLength(2);
  }, 90_000);
});
