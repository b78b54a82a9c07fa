/**
 * deploy on a Redis storage (PROXIMATION_STORAGE / --storage redis://...): the same commands, output and
 * guarantees as on the file, against a real redis-server, with a real `proximation serve` on the same
 * Redis that serves each switch (register, activate, rollback) and confirms it by its heartbeat there.
 * `deploy run` keeps its member's lease in Redis, which the proxy follows. Also: concurrent registers lose nothing, the change log is kept in Redis, and bad settings fail
 * before anything is written (a malformed URL or prefix as usage errors, a wrong password naming the
 * URL without it).
 */
import { describe, expect, it } from 'vitest';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ROUTES_KEY, findSite, fleetStorageOf, readChangeLog, readRoutingTable } from '@proximation/shared';
import { useRedisServer } from '../../shared/test/redis-server.js';
import { httpsRequest, managed } from '../../proximation/test/support/fixtures.js';
import { redisFleet } from '../../proximation/test/support/redis-fleet.js';
import { freePorts } from '../../proximation/test/support/process.js';
import { deploy, deployOk, spawnDeploy, startServer, tempDir, waitUntil } from './helpers.js';

const resources = managed();
const HOST = 'dev.example.com';

describe('deploy on a Redis storage', () => {
  const redis = useRedisServer({ password: 'deploy secret' });

  const answering = (name: string) => startServer((_req, res) => res.end(name));

  it('registers, activates and rolls back; the proxy on the same Redis serves each switch and confirms it', async () => {
    const { env, storage, serve } = await redisFleet(resources, redis());
    const created = await deployOk(['site', 'add', 'dev', '--host', HOST], env);
    expect(created).toContain(`created a new routing table at ${ROUTES_KEY} in redis://:***@127.0.0.1:${redis().port}`);
    expect(created).not.toContain('deploy secret');
    // The proxy polls once an hour: what it serves within the test arrived by pub/sub.
    const proxy = await serve({ PROXIMATION_ROUTES_POLL: '1h' });
    const body = async () => (await httpsRequest(proxy.target, HOST).catch(() => ({ body: '' }))).body;

    const [one, two] = await Promise.all([answering('one'), answering('two')]);
    const first = await deployOk(['register', '--tag', 'devbuild-1', '--upstream', one.origin, '--no-health-check'], env);
    expect(first).toMatch(/registered dev\/devbuild-1 .*; served by the one live proxy instance$/m);
    expect(await body()).toBe('one');

    const second = await deployOk(['register', '--tag', 'devbuild-2', '--upstream', two.origin, '--no-activate', '--no-health-check'], env);
    expect(second).toContain('registered dev/devbuild-2');
    expect(await body()).toBe('one');
    await deployOk(['activate', '--site', 'dev', '--version', 'devbuild-2'], env);
    expect(await body()).toBe('two');

    const versions = JSON.parse(await deployOk(['versions', '--site', 'dev', '--json'], env)) as { activeVersion: string; versions: { name: string }[] };
    expect(versions.activeVersion).toBe('devbuild-2');
    expect(versions.versions.map((v) => v.name)).toEqual(['devbuild-1', 'devbuild-2']);

    const back = await deployOk(['rollback', '--site', 'dev'], env);
    expect(back).toContain('devbuild-1');
    expect(await body()).toBe('one');

    // The proxy's heartbeat is in Redis: deploy status lists it, serving the last generation.
    const status = JSON.parse(await deployOk(['status', '--json'], env)) as { instances: { routesGeneration: number }[] };
    const generation = (await readRoutingTable(storage, ROUTES_KEY)).generation;
    expect(status.instances.map((i) => i.routesGeneration)).toEqual([generation]);
    // The change log is beside the table in Redis, each line saying it came straight to the storage.
    const log = await readChangeLog({ storage, key: ROUTES_KEY });
    expect(log.map((e) => [e.op, e.version, e.by.via])).toEqual([
      ['rollback', 'devbuild-1', 'redis'],
      ['activateVersion', 'devbuild-2', 'redis'],
      ['registerVersion', 'devbuild-2', 'redis'],
      ['registerVersion', 'devbuild-1', 'redis'],
      ['addSite', undefined, 'redis'],
    ]);
  }, 120_000);

  it('deploy run keeps its lease in Redis: the proxy routes to the member past several leases, and not once it left', async () => {
    const { env, storage, serve } = await redisFleet(resources, redis());
    await deployOk(['site', 'add', 'dev', '--host', HOST], env);
    const fixed = await answering('static');
    await deployOk(['register', '--tag', 'devbuild-1', '--upstream', fixed.origin, '--no-health-check'], env);
    const proxy = await serve({ PROXIMATION_ROUTES_POLL: '250ms' });
    const [port] = (await freePorts(1)) as [number];
    const events = join(await tempDir(), 'app.events');
    const origin = `http://127.0.0.1:${port}`;
    const app = fileURLToPath(new URL('fixtures/run-app.mjs', import.meta.url));
    const run = spawnDeploy(['run', '--upstream', origin, '--health-path', '/healthz', '--tag', 'devbuild-1', '--join', '--lease', '3s', '--drain-timeout', '3s', '--', process.execPath, app], {
      ...env,
      APP_PORT: String(port),
      APP_EVENTS: events,
    });
    resources.defer(async () => {
      if (run.child.exitCode === null && run.child.signalCode === null) run.child.kill('SIGKILL');
      await run.result.catch(() => undefined);
      const pids = (await readFile(events, 'utf8').catch(() => '')).split('\n').filter((l) => l !== '').map((l) => (JSON.parse(l) as { pid: number }).pid);
      for (const pid of new Set(pids)) {
        try {
          process.kill(pid, 'SIGKILL');
        } catch {
          // gone already
        }
      }
    });
    await waitUntil(() => {
      if (run.child.exitCode !== null) throw new Error(`deploy run exited ${run.child.exitCode}: ${run.stderr()}`);
      return /deploy run: (registered|added to)/.test(run.stderr());
    }, 30_000, 'deploy run to join');
    const fleet = fleetStorageOf({ storage, key: ROUTES_KEY });
    // The join is reported before the first renewal is written (the table's member carries its own join time).
    let joinedAt = NaN;
    await waitUntil(async () => {
      const lease = await fleet.getLease('dev', 'devbuild-1', origin);
      if (lease !== undefined) joinedAt = Date.parse(lease.renewedAt);
      return lease !== undefined;
    }, 10_000, 'the first lease renewal');
    const body = async () => (await httpsRequest(proxy.target, HOST, { path: '/app' })).body;
    await waitUntil(async () => (await body()).startsWith('app '), 10_000, 'the proxy to route to the app');
    // Renewed in Redis for more than two leases: the proxy still routes to it, so it saw the renewals.
    await waitUntil(async () => Date.parse((await fleet.getLease('dev', 'devbuild-1', origin))!.renewedAt) > joinedAt + 6_500, 20_000, 'renewals past two leases');
    const seen = new Set(await Promise.all([body(), body(), body(), body()]));
    expect([...seen].some((b) => b.startsWith('app '))).toBe(true);

    run.child.kill('SIGTERM');
    expect((await run.result).code).toBe(0);
    expect(await fleet.getLease('dev', 'devbuild-1', origin)).toBeUndefined();
    await waitUntil(async () => (await body()) === 'static', 10_000, 'the proxy to route to the static upstream alone');
    expect(findSite(await readRoutingTable(storage, ROUTES_KEY), 'dev').versions[0]!.upstreams).toEqual([fixed.origin]);
  }, 120_000);

  it('loses none of concurrent registers, and --storage names the same table as PROXIMATION_STORAGE', async () => {
    const { env, storage } = await redisFleet(resources, redis());
    const flags = ['--storage', env.PROXIMATION_STORAGE!, '--storage-prefix', env.PROXIMATION_STORAGE_PREFIX!];
    await deployOk(['site', 'add', 'dev', '--host', HOST, ...flags]);
    const tags = Array.from({ length: 6 }, (_, i) => `devbuild-${i + 1}`);
    await Promise.all(tags.map((tag, i) => deployOk(['register', '--tag', tag, '--upstream', `http://10.0.3.${i + 1}:8080`, '--no-health-check', '--no-activate', '--no-wait'], env)));
    const table = await readRoutingTable(storage, ROUTES_KEY);
    expect(findSite(table, 'dev').versions.map((v) => v.name).sort()).toEqual(tags);
    expect(table.generation).toBe(1 + tags.length);
    expect(await deployOk(['site', 'list', ...flags])).toContain('dev');
  }, 60_000);

  it('fails a missing table, a malformed URL or prefix and a wrong password before writing anything', async () => {
    const { env, storage } = await redisFleet(resources, redis());
    const missing = await deploy(['versions', '--site', 'dev'], env);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toContain(`No routing table at ${ROUTES_KEY} in redis://:***@127.0.0.1:${redis().port} (from PROXIMATION_STORAGE): check the key prefix (PROXIMATION_STORAGE_PREFIX)`);

    const malformed = await deploy(['site', 'list', '--storage', 'redis//127.0.0.1:6379']);
    expect(malformed.code).toBe(2);
    expect(malformed.stderr).toMatch(/--storage: "redis\/\/127\.0\.0\.1:6379" is not a URL/);
    const prefix = await deploy(['site', 'list', '--storage', redis().url, '--storage-prefix', 'has spaces']);
    expect(prefix.code).toBe(2);
    expect(prefix.stderr).toContain('--storage-prefix: "has spaces" is not a key prefix');
    const onFile = await deploy(['site', 'list', '--routes', 'routes.json', '--storage-prefix', 'p:']);
    expect(onFile.code).toBe(2);
    expect(onFile.stderr).toContain('--storage-prefix only applies with a Redis storage');
    const both = await deploy(['site', 'list', '--routes', 'routes.json', '--storage', redis().url]);
    expect(both.code).toBe(2);
    expect(both.stderr).toContain("Give either --routes FILE (the routing table file) or --storage DIR|URL (the proxies' storage), not both.");

    const wrong = await deploy(['site', 'add', 'dev', '--host', HOST], { ...env, PROXIMATION_STORAGE: `redis://:wrong-password@127.0.0.1:${redis().port}` });
    expect(wrong.code).toBe(1);
    expect(wrong.stderr).toContain(`Redis at redis://:***@127.0.0.1:${redis().port} refused the credentials`);
    expect(wrong.stderr).not.toContain('wrong-password');
    expect(await storage.list('')).toEqual([]);
  }, 60_000);
});
