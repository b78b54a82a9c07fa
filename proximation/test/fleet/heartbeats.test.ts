/**
 * Instance heartbeats with real processes: a single-process instance and one with 2 workers on one
 * directory each publish a record with their generation, what is in flight per upstream (summed
 * over the workers), request and error rates and RSS (the workers' included); a clean stop removes the record, a SIGKILLed instance's record stops being renewed;
 * a foreign file among the records is reported and left out.
 */
import fs from 'node:fs/promises';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { fileFleetStorage, type InstanceRecord } from '@proximation/shared';
import { httpsRequest, managed, table, tempDir, writeRoutes } from '../support/fixtures.js';
import { startServeProcess, waitUntil } from '../support/process.js';

const resources = managed();

describe('instance heartbeats', () => {
  it('publish generation and in-flight requests per upstream, summed over workers; a stop removes the record, a SIGKILL leaves it stale', async () => {
    const dir = await tempDir();
    resources.defer(() => dir.close());
    const state = path.join(dir.path, 'proximation');
    const held: (() => void)[] = [];
    const slow = await resources.upstream((req, res) => {
      if (req.url === '/hold') held.push(() => res.end('done'));
      else res.end('ok');
    });
    await writeRoutes(path.join(state, 'routes.json'), table([{ name: 'app', hosts: ['app.test'], upstreams: [slow.origin] }], 4));
    const token = 'status-test-token-0123456789';
    const env = { PROXIMATION_ROUTES_POLL: '250ms', PROXIMATION_ACCESS_LOG: 'off', PROXIMATION_HEALTH_INTERVAL: '1h', PROXIMATION_ADMIN_TOKEN: token };
    const single = await startServeProcess(dir.path, env);
    resources.defer(() => single.kill());
    const workers = await startServeProcess(dir.path, { ...env, PROXIMATION_WORKERS: '2' }, 20_000);
    resources.defer(() => workers.kill());
    const fleet = fileFleetStorage(state);
    await fs.mkdir(path.join(state, 'instances'), { recursive: true });
    await fs.writeFile(path.join(state, 'instances', 'foreign.json'), '{"kind": "something else"}');

    const byPid = async (): Promise<Map<number, InstanceRecord>> => new Map((await fleet.readInstances()).records.map((r) => [r.pid, r]));
    const inFlight = (r: InstanceRecord | undefined) => r?.traffic.find((t) => t.upstream === slow.origin)?.inFlight ?? 0;
    const requests = [
      httpsRequest(single.target, 'app.test', { path: '/hold' }),
      ...[1, 2, 3, 4].map(() => httpsRequest(workers.target, 'app.test', { path: '/hold' })),
    ];
    await waitUntil(() => held.length === 5, 'the upstream to hold 5 requests', 10_000);
    await waitUntil(async () => {
      const records = await byPid();
      return inFlight(records.get(single.cli.child.pid!)) === 1 && inFlight(records.get(workers.cli.child.pid!)) === 4;
    }, 'both heartbeats to show the requests in flight, summed over the workers', 15_000);
    // The admin API serves the same, for the whole fleet, from either instance.
    const status = await fetch(`http://127.0.0.1:${single.ports.admin}/api/status`, { headers: { authorization: `Bearer ${token}` } });
    expect(status.status).toBe(200);
    const fleetJson = (await status.json()) as any;
    expect(fleetJson.instances.map((i: any) => [i.pid, i.inFlight, i.routesGeneration]).sort()).toEqual([[single.cli.child.pid, 1, 4], [workers.cli.child.pid, 4, 4]].sort());
    expect(fleetJson.sites).toEqual([{ name: 'app', hosts: ['app.test'], activeVersion: 'v1', versions: [{ name: 'v1', active: true, members: [expect.objectContaining({ upstream: slow.origin, inFlight: 5, websockets: 0 })] }] }]);
    expect((await fetch(`http://127.0.0.1:${single.ports.admin}/api/status`)).status).toBe(401);
    const records = await byPid();
    expect(records.get(workers.cli.child.pid!)).toMatchObject({ workers: 2, routesGeneration: 4, id: expect.stringMatching(/:\d+$/) });
    expect(records.get(single.cli.child.pid!)).toMatchObject({ workers: 1, routesGeneration: 4, certificates: [{ name: 'app.test', state: 'valid' }] });
    // Rates and RSS for the status page; an instance with workers counts its three processes' memory.
    const rss = (r: InstanceRecord | undefined) => r?.rssBytes ?? 0;
    for (const r of records.values()) expect(r).toMatchObject({ requestsPerSecond: expect.any(Number), errorsPerSecond: expect.any(Number), rssBytes: expect.any(Number) });
    expect(rss(records.get(workers.cli.child.pid!))).toBeGreaterThan(rss(records.get(single.cli.child.pid!)));
    for (const release of held) release();
    await Promise.all(requests);
    await waitUntil(async () => inFlight((await byPid()).get(workers.cli.child.pid!)) === 0, 'the heartbeat to show nothing in flight', 15_000);
    expect((await fleet.readInstances()).problems).toEqual([]);
    expect((await fileFleetStorage(state).readInstances()).problems).toEqual([expect.stringMatching(/foreign\.json: not a proximation\/instance record; ignored/)]);

    // SIGTERM: the record goes; SIGKILL: it stays, no longer renewed.
    single.cli.child.kill('SIGTERM');
    await single.cli.exited;
    expect((await byPid()).has(single.cli.child.pid!)).toBe(false);
    await workers.kill();
    const last = (await byPid()).get(workers.cli.child.pid!)!.writtenAt;
    await new Promise((resolve) => setTimeout(resolve, 3000));
    expect((await byPid()).get(workers.cli.child.pid!)!.writtenAt).toBe(last);
  }, 90_000);
});
