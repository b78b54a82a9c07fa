/**
 * `deploy run` with real processes: the deploy bin supervising a real app (fixtures/run-app.mjs, which
 * records its requests and signals), in front of it a real `proximation serve` on the same directory
 * where a test needs traffic through a proxy, and beside the member a static upstream of the same
 * version, so that the version keeps serving while the member leaves.
 */
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { fileFleetStorage, findSite, readRoutingTableFile, type RoutingTable } from '@proximation/shared';
import { httpsRequest, managed } from '../../proximation/test/support/fixtures.js';
import { startServeProcess, type ServeProcess } from '../../proximation/test/support/process.js';
import { renewLease } from '../src/lease-renewal.js';
import { deploy, deployOk, routesWithDev, spawnDeploy, startServer, waitUntil } from './helpers.js';
import { keepAliveLoad, runApp } from './run-app.js';

const resources = managed();
const HOST = 'dev.example.com';

/** A routing table with dev/devbuild-1 active on one static upstream that answers "static". */
async function versionWithStaticUpstream(): Promise<string> {
  const routes = await routesWithDev();
  const fixed = await startServer((_req, res) => setTimeout(() => res.end('static'), 20));
  await deployOk(['register', '--tag', 'devbuild-1', '--upstream', fixed.origin, '--no-health-check', '--routes', routes]);
  return routes;
}

async function proxyOn(routes: string): Promise<ServeProcess> {
  const proxy = await startServeProcess(dirname(dirname(routes)), { PROXIMATION_ROUTES_POLL: '250ms', PROXIMATION_ACCESS_LOG: 'off' });
  resources.defer(() => proxy.kill());
  return proxy;
}

const members = (table: RoutingTable) => findSite(table, 'dev').versions.find((v) => v.name === 'devbuild-1')?.members ?? [];

describe('deploy run', () => {
  it('joins once the app is healthy and serves through the proxy; on SIGTERM under keep-alive load it leaves, drains, then stops the app: no failed request', async () => {
    const routes = await versionWithStaticUpstream();
    const proxy = await proxyOn(routes);
    const app = await runApp(routes, ['--tag', 'devbuild-1', '--join', '--lease', '6s', '--drain-timeout', '6s'], resources.defer, { APP_TERM_STATUS: '3' });
    await app.joined();
    expect(members(await readRoutingTableFile(routes))).toMatchObject([{ upstream: app.origin, leaseMs: 6_000 }]);
    await waitUntil(async () => (await httpsRequest(proxy.target, HOST)).body.startsWith('app '), 10_000, 'the proxy to route to the app');

    const traffic = keepAliveLoad([proxy], HOST, 4, '/slow');
    try {
      await waitUntil(() => (traffic.bodies.get('app') ?? 0) >= 8, 20_000, 'the app to get load through the proxy');
      app.run.child.kill('SIGTERM');
      const { code, stderr } = await app.run.result;
      // The app's own status (it exits 3 on SIGTERM), passed through.
      expect({ code, stderr }).toMatchObject({ code: 3 });
      expect(stderr).toMatch(/deploy run: took http:\/\/127\.0\.0\.1:\d+ out of dev\/devbuild-1/);
      expect(stderr).toContain('deploy run: drained after');
      const after = traffic.bodies.get('static') ?? 0;
      await waitUntil(() => (traffic.bodies.get('static') ?? 0) >= after + 10, 20_000, 'the load to go on at the static upstream');
    } finally {
      await traffic.stop();
    }
    expect(traffic.failures).toEqual([]);
    const events = await app.appEvents();
    const term = events.find((e) => e.event === 'SIGTERM');
    // Drained first: nothing was in flight at the app when it got SIGTERM, and nothing came after.
    expect(term).toMatchObject({ inFlight: 0 });
    expect(events.filter((e) => e.event === 'request' && e.at > term!.at)).toEqual([]);
    const table = await readRoutingTableFile(routes);
    expect(members(table)).toEqual([]);
    expect(findSite(table, 'dev').versions[0]!.upstreams).toHaveLength(1);
    expect(await fileFleetStorage(dirname(routes)).getLease('dev', 'devbuild-1', app.origin)).toBeUndefined();
  }, 120_000);

  it('passes signals on; when the app exits by itself it leaves at once and exits with its status', async () => {
    const routes = await routesWithDev();
    const app = await runApp(routes, ['--tag', 'devbuild-1'], resources.defer, { APP_EXIT_STATUS: '7' });
    await app.joined();
    expect(members(await readRoutingTableFile(routes))).toMatchObject([{ upstream: app.origin, leaseMs: 30_000 }]);
    // One at a time: the order in which a process handles two signals pending at once is not the order
    // they were sent in (a process-directed signal goes to any thread that does not block it), and the
    // test is about the passing on, not about that order.
    const signalsSeen = async () => (await app.appEvents()).filter((e) => e.event.startsWith('SIG')).length;
    app.run.child.kill('SIGHUP');
    await waitUntil(async () => (await signalsSeen()) === 1, 10_000, 'the app to get SIGHUP');
    app.run.child.kill('SIGUSR2');
    await waitUntil(async () => (await signalsSeen()) === 2, 10_000, 'the app to get SIGUSR2');
    expect((await app.appEvents()).map((e) => e.event)).toEqual(['listening', 'SIGHUP', 'SIGUSR2']);
    await fetch(`${app.origin}/exit`);
    const { code, stderr } = await app.run.result;
    expect(code).toBe(7);
    expect(stderr).toContain('deploy run: the app exited with status 7; leaving dev/devbuild-1');
    expect(members(await readRoutingTableFile(routes))).toEqual([]);
  }, 60_000);

  it('exits with 128 + the signal when a signal ends the app, after leaving', async () => {
    const routes = await routesWithDev();
    const app = await runApp(routes, ['--tag', 'devbuild-1'], resources.defer);
    await app.joined();
    const { pid } = (await app.appEvents())[0]!;
    process.kill(pid, 'SIGKILL');
    const { code, stderr } = await app.run.result;
    expect(code).toBe(137);
    expect(stderr).toContain('the app was ended by SIGKILL');
    expect(members(await readRoutingTableFile(routes))).toEqual([]);
  }, 60_000);

  it('stops an app that never becomes healthy and registers nothing; an app that exits first passes its status on', async () => {
    const routes = await routesWithDev();
    const before = await readFile(routes, 'utf8');
    const unhealthy = await runApp(routes, ['--tag', 'devbuild-1', '--health-timeout', '1s'], resources.defer, { APP_UNHEALTHY: '1' });
    const { code, stderr } = await unhealthy.run.result;
    expect(code).toBe(1);
    expect(stderr).toMatch(/^deploy: The app did not become healthy: the upstream did not pass the health check \(GET \/healthz answering 2xx or 3xx within 1s\):\n  http:\/\/127\.0\.0\.1:\d+: GET \/healthz answered 503/);
    expect(stderr).toContain('Nothing was registered, and the app was stopped.');
    expect((await unhealthy.appEvents()).map((e) => e.event)).toEqual(['listening', 'SIGTERM']);
    expect(await readFile(routes, 'utf8')).toBe(before);

    const early = spawnDeploy(['run', '--tag', 'devbuild-1', '--upstream', 'http://127.0.0.1:9', '--routes', routes, '--', process.execPath, '-e', 'process.exit(5)']);
    const exited = await early.result;
    expect(exited.code).toBe(5);
    expect(exited.stderr).toContain('deploy run: the app exited with status 5 before it passed its health check; nothing was registered');
    expect(await readFile(routes, 'utf8')).toBe(before);
  }, 60_000);

});

describe('deploy run refuses bad input before starting anything', () => {
  const cases: [string[], string][] = [
    [['--tag', 'devbuild-1', '--upstream', 'http://10.0.0.5:8080'], 'Missing "--" and the app\'s command'],
    [['--tag', 'devbuild-1', '--upstream', 'http://10.0.0.5:8080', '--'], 'No command after "--"'],
    [['--tag', 'devbuild-1', '--upstream', 'http://10.0.0.5:8080', '--lease', '2s', '--', 'true'], '--lease 2s is shorter than 3s'],
    [['--tag', 'devbuild-1', '--upstream', 'http://10.0.0.5:8080', '--lease', 'off', '--', 'true'], 'deploy run always leases its members'],
    [['--tag', 'devbuild-1', '--upstream', 'http://10.0.0.5:8080', '--drain-timeout', '45s', '--', 'true'], '--drain-timeout 45s is longer than the lease (30s)'],
    [['--tag', 'devbuild-1', '--upstream', 'http://10.0.0.5:8080', '--lease', '10s', '--drain-timeout', '11s', '--', 'true'], '--drain-timeout 11s is longer than the lease (10s)'],
    [['--tag', 'devbuild-1', '--upstream', 'http://10.0.0.5:8080', '--json', '--', 'true'], '--json does not apply to deploy run'],
    [['--upstream', 'http://10.0.0.5:8080', '--', 'true'], 'Say which version to run'],
  ];
  it.each(cases)('deploy run %j', async (args, message) => {
    const routes = await routesWithDev();
    const before = await readFile(routes, 'utf8');
    const result = await deploy(['run', '--routes', routes, ...args]);
    expect(result.stderr).toContain(message);
    expect(result.code).toBe(2);
    expect(await readFile(routes, 'utf8')).toBe(before);
  });

  it('refuses an unknown site, and a tag no site claims, with exit 1 before the app starts', async () => {
    const routes = await routesWithDev();
    const before = await readFile(routes, 'utf8');
    const marker = join(dirname(routes), 'app-started');
    const app = ['--', process.execPath, '-e', `require('node:fs').writeFileSync(${JSON.stringify(marker)}, '')`];
    const unknown = await deploy(['run', '--routes', routes, '--site', 'stage', '--version', 'v1', '--upstream', 'http://10.0.0.5:8080', ...app]);
    expect(unknown).toMatchObject({ code: 1, stderr: expect.stringContaining('Unknown site "stage": known sites: dev.') });
    const unclaimed = await deploy(['run', '--routes', routes, '--tag', 'other-1', '--upstream', 'http://10.0.0.5:8080', ...app]);
    expect(unclaimed).toMatchObject({ code: 1, stderr: expect.stringContaining('No site\'s tag prefix matches tag "other-1"') });
    expect(existsSync(marker)).toBe(false);
    expect(await readFile(routes, 'utf8')).toBe(before);
  });

  it('refuses a proxy\'s admin API, which keeps no leases', async () => {
    const result = await deploy(['run', '--tag', 'devbuild-1', '--upstream', 'http://10.0.0.5:8080', '--proxy', 'http://127.0.0.1:9180', '--', 'true'], { DEPLOY_TOKEN: 'x'.repeat(32) });
    expect(result.code).toBe(2);
    expect(result.stderr).toContain('deploy run keeps its lease in the shared directory beside the routing table');
  });
});

describe('lease renewals', () => {
  it('refuses a renewal of an address whose lease another identity holds, until that lease has run out', async () => {
    const routes = await routesWithDev();
    const fleet = fileFleetStorage(dirname(routes));
    const member = { site: 'dev', version: 'devbuild-1', upstream: 'http://10.0.0.5:8080', leaseMs: 3_000 };
    await renewLease(fleet, { ...member, identity: 'task-a' });
    const held = await fleet.getLease('dev', 'devbuild-1', member.upstream);
    await expect(renewLease(fleet, { ...member, identity: 'task-b' })).rejects.toMatchObject({
      code: 'ERR_MEMBER_IDENTITY',
      message: expect.stringContaining('Not renewing the lease of http://10.0.0.5:8080 in dev/devbuild-1 as task-b: task-a holds it'),
    });
    expect(await fleet.getLease('dev', 'devbuild-1', member.upstream)).toEqual(held);
    await renewLease(fleet, { ...member, identity: 'task-b' }, Date.parse(held!.renewedAt) + 3_000);
    expect(await fleet.getLease('dev', 'devbuild-1', member.upstream)).toMatchObject({ identity: 'task-b' });
  });
});
