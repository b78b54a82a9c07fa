/**
 * Leases of self-registered members, end to end with real processes: two proximation instances (one a
 * single process, one with 2 workers) on one directory, a member kept alive by renewals in its lease
 * record and then abandoned (as a SIGKILLed task leaves it), a static upstream beside it. The member
 * leaves both proxies' rotation by time, without any write of the routing table, within its lease plus
 * one poll after its last renewal; the next write removes it from the table.
 */
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  applyRoutingTableChange,
  fileFleetStorage,
  readRoutingTableFile,
  routesFileLocation,
  updateRoutingTableWithLeases,
  type RoutingTable,
} from '@proximation/shared';
import { httpsRequest, managed, tempDir, writeRoutes } from '../support/fixtures.js';
import { startServeProcess, waitUntil } from '../support/process.js';

const resources = managed();
const LEASE_MS = 6_000;
const POLL_MS = 250;

function named(name: string, received: number[]) {
  return resources.upstream((_req, res) => {
    received.push(Date.now());
    res.end(name);
  });
}

describe('member leases across instances', () => {
  it('takes a member whose renewals stopped out of every proxy\'s rotation within lease + poll, and the next write removes it', async () => {
    const dir = await tempDir();
    resources.defer(() => dir.close());
    const state = path.join(dir.path, 'proximation');
    const routes = path.join(state, 'routes.json');
    const memberHits: number[] = [];
    const member = await named('member', memberHits);
    const fixed = await named('static', []);
    const joinedAt = new Date().toISOString();
    const initial: RoutingTable = {
      schemaVersion: 1,
      generation: 1,
      sites: [{
        name: 'app',
        hosts: ['app.test'],
        activeVersion: 'v1',
        history: [],
        versions: [{
          name: 'v1',
          upstreams: [member.origin, fixed.origin],
          registeredAt: joinedAt,
          members: [{ upstream: member.origin, identity: 'task-1', leaseMs: LEASE_MS, joinedAt }],
        }],
      }],
    };
    await writeRoutes(routes, initial);
    const fleet = fileFleetStorage(state);
    let lastRenewal = Date.now();
    const renew = async () => {
      lastRenewal = Date.now();
      await fleet.putLease({ site: 'app', version: 'v1', upstream: member.origin, identity: 'task-1', leaseMs: LEASE_MS, renewedAt: new Date(lastRenewal).toISOString() });
    };
    await renew();
    const env = { PROXIMATION_ROUTES_POLL: `${POLL_MS}ms`, PROXIMATION_ACCESS_LOG: 'off' };
    const single = await startServeProcess(dir.path, env);
    resources.defer(() => single.kill());
    const workers = await startServeProcess(dir.path, { ...env, PROXIMATION_WORKERS: '2' }, 20_000);
    resources.defer(() => workers.kill());
    const bodies = async () => Promise.all([single, workers].flatMap((p) => [1, 2, 3, 4].map(async () => (await httpsRequest(p.target, 'app.test')).body)));

    // Renewed past its join-time lease: still served by both proxies, so the renewals are what they follow.
    const renewing = setInterval(() => void renew(), LEASE_MS / 3);
    try {
      await waitUntil(() => Date.now() > Date.parse(joinedAt) + LEASE_MS + 1000, 'the join-time lease to have run out', 20_000);
      await waitUntil(async () => (await bodies()).includes('member'), 'both proxies to keep routing to the renewed member', 10_000);
    } finally {
      clearInterval(renewing);
    }
    const abandonedAt = lastRenewal;

    await waitUntil(async () => (await bodies()).every((b) => b === 'static'), 'both proxies to stop routing to the expired member', 20_000);
    // The bound: no request reached it later than lease + one poll after its last renewal (plus a second for a loaded machine).
    expect(Math.max(...memberHits) - abandonedAt).toBeLessThan(LEASE_MS + POLL_MS + 1000);
    expect((await readRoutingTableFile(routes)).generation).toBe(1);

    // The next write removes it (and its lease record), whatever the write was for.
    await updateRoutingTableWithLeases(routesFileLocation(routes), fleet, (table, clock) =>
      applyRoutingTableChange(table, { op: 'addSite', site: 'other', hosts: ['other.test'] }, new Date(), undefined, clock));
    const after = await readRoutingTableFile(routes);
    expect(after.sites[0]!.versions[0]).toMatchObject({ upstreams: [fixed.origin], members: [] });
    expect(await fleet.getLease('app', 'v1', member.origin)).toBeUndefined();
  }, 90_000);
});
