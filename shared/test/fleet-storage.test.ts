/**
 * The contract of fleet-storage.ts as one suite, run on a directory and on a real redis-server: leases
 * and heartbeats written by one handle are read by another (another process), replaced whole, removed;
 * a record that does not parse is left out and reported once, naming where it is; on files the layout
 * is the one of before; on Redis a record's key expires by itself once no reader counts it any more.
 */
import { randomBytes } from 'node:crypto';
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { fleetStorageOf, type FleetStorage, type InstanceRecord, type LeaseRecord } from '../src/fleet-storage.js';
import { FileStorage } from '../src/storage/file-backend.js';
import { connectRedisStorage } from '../src/storage/redis-backend.js';
import type { Storage } from '../src/storage/storage.js';
import { tempDir, waitUntil } from './helpers.js';
import { useRedisServer } from './redis-server.js';

const ROUTES = 'proximation/routes.json';

const lease = (upstream: string, renewedAt = new Date(), leaseMs = 30_000): LeaseRecord => ({
  site: 'dev',
  version: 'devbuild-1',
  upstream,
  identity: `task/${upstream}`,
  leaseMs,
  renewedAt: renewedAt.toISOString(),
});

const instance = (id: string, generation: number, periodMs = 5_000): InstanceRecord => ({
  id,
  host: 'host-a',
  pid: 42,
  addresses: ['10.0.0.1:9180'],
  startedAt: new Date(0).toISOString(),
  writtenAt: new Date().toISOString(),
  periodMs,
  routesGeneration: generation,
  workers: 2,
  certificates: [],
  traffic: [{ site: 'dev', version: 'devbuild-1', upstream: 'http://10.0.1.1:8080', inFlight: 3, websockets: 1 }],
});

/** `open` gives a new handle on one store each call (two handles stand for two processes). */
function fleetStorageContract(name: string, newStore: () => Promise<{ open: () => Promise<Storage> }>): void {
  describe(`fleet storage contract: ${name}`, () => {
    const opened: Storage[] = [];
    afterEach(async () => {
      await Promise.all(opened.splice(0).map((storage) => storage.close()));
    });
    async function handles(): Promise<{ storage: Storage; writer: FleetStorage; reader: FleetStorage }> {
      const store = await newStore();
      const [storage, other] = [await store.open(), await store.open()];
      opened.push(storage, other);
      return { storage, writer: fleetStorageOf({ storage, key: ROUTES }), reader: fleetStorageOf({ storage: other, key: ROUTES }) };
    }

    it('reads the leases another handle wrote, the latest of each, and forgets removed ones', async () => {
      const { writer, reader } = await handles();
      expect(await reader.readLeases()).toEqual({ records: [], problems: [] });
      await writer.putLease(lease('http://10.0.1.1:8080', new Date(1_000)));
      await writer.putLease(lease('http://10.0.1.2:8080'));
      expect((await reader.readLeases()).records.map((r) => r.upstream).sort()).toEqual(['http://10.0.1.1:8080', 'http://10.0.1.2:8080']);
      const renewed = lease('http://10.0.1.1:8080', new Date(2_000));
      await writer.putLease(renewed);
      expect(await reader.getLease('dev', 'devbuild-1', 'http://10.0.1.1:8080')).toEqual(renewed);
      await writer.removeLease('dev', 'devbuild-1', 'http://10.0.1.2:8080');
      await writer.removeLease('dev', 'devbuild-1', 'http://10.0.1.2:8080');
      expect(await reader.getLease('dev', 'devbuild-1', 'http://10.0.1.2:8080')).toBeUndefined();
      expect((await reader.readLeases()).records).toEqual([renewed]);
    });

    it('as a follower of renewals, looks again only at records whose lease nears its end, and at new ones', async () => {
      const { writer, reader } = await handles();
      const follow = { followRenewals: { pollMs: 1_000 } };
      const fresh = lease('http://10.0.1.1:8080');
      // 60 s lease with 2 s left: inside its 10 s margin (a sixth of the lease).
      const ending = lease('http://10.0.1.2:8080', new Date(Date.now() - 58_000), 60_000);
      await writer.putLease(fresh);
      await writer.putLease(ending);
      expect((await reader.readLeases(follow)).records).toHaveLength(2);
      const freshRenewed = { ...fresh, renewedAt: new Date(Date.now() + 1_000).toISOString() };
      const endingRenewed = { ...ending, renewedAt: new Date().toISOString() };
      await writer.putLease(freshRenewed);
      await writer.putLease(endingRenewed);
      const added = lease('http://10.0.1.3:8080');
      await writer.putLease(added);
      const byUpstream = (records: readonly LeaseRecord[]) => Object.fromEntries(records.map((r) => [r.upstream, r.renewedAt]));
      expect(byUpstream((await reader.readLeases(follow)).records)).toEqual({
        [fresh.upstream]: fresh.renewedAt,
        [ending.upstream]: endingRenewed.renewedAt,
        [added.upstream]: added.renewedAt,
      });
      // A plain read looks at every record.
      expect(byUpstream((await reader.readLeases()).records)[fresh.upstream]).toBe(freshRenewed.renewedAt);
    });

    it("reads each instance's latest heartbeat, and none once removed", async () => {
      const { writer, reader } = await handles();
      await writer.putInstance(instance('arn:aws:ecs:task/a', 1));
      await writer.putInstance(instance('host-b:7', 1));
      expect((await reader.readInstances()).records.map((r) => [r.id, r.routesGeneration]).sort()).toEqual([['arn:aws:ecs:task/a', 1], ['host-b:7', 1]]);
      // A heartbeat of the same size is still a new one (the file backend's stat signature has the mtime).
      await writer.putInstance(instance('arn:aws:ecs:task/a', 2));
      expect((await reader.readInstances()).records.find((r) => r.id === 'arn:aws:ecs:task/a')?.routesGeneration).toBe(2);
      await writer.removeInstance('host-b:7');
      await writer.removeInstance('host-b:7');
      expect((await reader.readInstances()).records.map((r) => r.id)).toEqual(['arn:aws:ecs:task/a']);
    });

    it('leaves out a record that does not parse or is of another kind, reporting it once by where it is', async () => {
      const { storage, writer, reader } = await handles();
      await writer.putInstance(instance('good', 1));
      await storage.write('proximation/instances/broken.json', '{"kind": "proximation/inst');
      await storage.write('proximation/instances/foreign.json', '{"kind": "something/else"}');
      await storage.write('proximation/leases/short.json', JSON.stringify({ kind: 'proximation/lease', site: 'dev' }));
      const first = await reader.readInstances();
      expect(first.records.map((r) => r.id)).toEqual(['good']);
      expect(first.problems).toEqual([
        expect.stringMatching(/proximation\/instances\/broken\.json.*: not JSON; ignored$/),
        expect.stringMatching(/proximation\/instances\/foreign\.json.*: not a proximation\/instance record; ignored$/),
      ]);
      expect((await reader.readInstances()).problems).toEqual([]);
      expect((await reader.readLeases()).problems).toEqual([expect.stringMatching(/proximation\/leases\/short\.json.*: malformed proximation\/lease record \(version: .*\); ignored$/)]);
    });
  });
}

fleetStorageContract('file', async () => {
  const dir = await tempDir();
  return { open: async () => new FileStorage(dir) };
});

describe('redis', () => {
  const redis = useRedisServer();

  fleetStorageContract('redis', async () => {
    const keyPrefix = `fleet${randomBytes(4).toString('hex')}:`;
    return { open: () => connectRedisStorage(redis().url, { keyPrefix }) };
  });

  it('lets a lease and a heartbeat expire as keys, twice as late as readers stop counting them', async () => {
    const storage = await connectRedisStorage(redis().url, { keyPrefix: `exp${randomBytes(4).toString('hex')}:` });
    try {
      const fleet = fleetStorageOf({ storage, key: ROUTES });
      const written = Date.now();
      await fleet.putLease(lease('http://10.0.1.1:8080', new Date(), 150));
      await fleet.putInstance(instance('short-lived', 1, 50));
      await fleet.putInstance(instance('kept', 1, 60_000));
      await waitUntil(async () => (await fleet.readLeases()).records.length === 0 && (await fleet.readInstances()).records.length === 1, 10_000, 'the short records to expire');
      expect(Date.now() - written).toBeGreaterThanOrEqual(295);
      expect(await storage.list('proximation')).toEqual([expect.stringMatching(/^proximation\/instances\/kept-[0-9a-f]{16}\.json$/)]);
    } finally {
      await storage.close();
    }
  });
});

it('keeps the file layout of before: <dir>/leases and <dir>/instances, beside routes.json', async () => {
  const dir = await tempDir();
  const fleet = fleetStorageOf({ storage: new FileStorage(dir), key: ROUTES });
  await fleet.putLease(lease('http://10.0.1.1:8080'));
  await fleet.putInstance(instance('arn:aws:ecs:eu-west-1:1:task/c/0123', 1));
  expect(await readdir(join(dir, 'proximation', 'leases'))).toEqual([expect.stringMatching(/^dev_devbuild-1_http_10\.0\.1\.1_8080-[0-9a-f]{16}\.json$/)]);
  expect(await readdir(join(dir, 'proximation', 'instances'))).toEqual([expect.stringMatching(/^arn_aws_ecs_eu-west-1_1_task_c_0123-[0-9a-f]{16}\.json$/)]);
});
