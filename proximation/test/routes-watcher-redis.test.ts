import { randomBytes } from 'node:crypto';
import { PassThrough } from 'node:stream';
import { addSite, connectRedisStorage, emptyRoutingTable, serializeRoutingTable, updateRoutingTable } from '@proximation/shared';
import type { RoutingTable, Storage } from '@proximation/shared';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { startRedisServer } from '../../shared/test/redis-server.js';
import type { RedisServer } from '../../shared/test/redis-server.js';
import { createLogger } from '../src/logger.js';
import { RoutesWatcher } from '../src/routes-watcher.js';
import { waitUntil } from './support/process.js';

const KEY = 'proximation/routes.json';
const HOUR_MS = 3_600_000;

describe('the routing table on Redis', () => {
  let server: RedisServer;
  const opened: Array<{ close: () => Promise<void> }> = [];
  beforeAll(async () => {
    server = await startRedisServer();
  });
  afterEach(async () => {
    await Promise.all(opened.splice(0).map((o) => o.close()));
  });
  afterAll(async () => {
    await server?.stop({ final: true });
  });

  async function setup(): Promise<{ writer: Storage; tables: RoutingTable[]; logs: () => string; watcher: RoutesWatcher }> {
    const keyPrefix = `w${randomBytes(4).toString('hex')}:`;
    const writer = await connectRedisStorage(server.url, { keyPrefix });
    const reader = await connectRedisStorage(server.url, { keyPrefix });
    const out = new PassThrough();
    const chunks: Buffer[] = [];
    out.on('data', (chunk: Buffer) => chunks.push(chunk));
    const tables: RoutingTable[] = [];
    // An hour's poll: whatever arrives sooner came by pub/sub.
    const watcher = new RoutesWatcher(reader, KEY, HOUR_MS, createLogger({ level: 'info', format: 'json', destination: out }), (t) => tables.push(t));
    opened.push({ close: () => watcher.stop() }, writer, reader);
    await watcher.start();
    return { writer, tables, logs: () => Buffer.concat(chunks).toString('utf8'), watcher };
  }

  const addDev = (table: RoutingTable): RoutingTable => addSite(table, { name: 'dev', hosts: ['dev.example.com'] });

  it('delivers a change by pub/sub, and keeps the last good table when the stored value does not parse', async () => {
    const { writer, tables, logs, watcher } = await setup();
    expect(tables.map((t) => t.generation)).toEqual([0]);
    await updateRoutingTable(writer, KEY, addDev);
    await waitUntil(() => tables.length === 2, 'the new table by pub/sub', 10_000);
    expect(tables[1]!.sites.map((s) => s.name)).toEqual(['dev']);

    await writer.write(KEY, '{"schemaVersion": 1, "generation": ');
    await waitUntil(() => logs().includes('routing table rejected'), 'the rejection to be logged', 10_000);
    expect(watcher.table!.generation).toBe(1);
    expect(logs()).toContain(`${KEY} in redis://127.0.0.1:${server.port}`);

    await writer.write(KEY, serializeRoutingTable({ ...addDev(emptyRoutingTable()), generation: 5 }));
    await waitUntil(() => watcher.table!.generation === 5, 'the next good table', 10_000);
  });

  it('serves from memory while Redis is away, says so, and picks up what changed meanwhile once it is back', async () => {
    const { writer, tables, logs, watcher } = await setup();
    await updateRoutingTable(writer, KEY, addDev);
    await waitUntil(() => tables.length === 2, 'the first table', 10_000);
    await server.stop();
    await watcher.poll();
    expect(watcher.storageUnavailable).toBe(true);
    expect(watcher.table!.generation).toBe(1);
    expect(logs()).toContain('cannot read the routing table; still serving the last good one');
    await server.start(); // an empty Redis (no persistence in the test): write the change made "meanwhile"
    await waitUntil(() => writer.write(KEY, serializeRoutingTable({ ...addDev(emptyRoutingTable()), generation: 9 })).then(() => true, () => false), 'the writer to reconnect', 20_000);
    await waitUntil(() => watcher.table!.generation === 9, 'the change made while away', 20_000);
    expect(watcher.storageUnavailable).toBe(false);
  });
});
