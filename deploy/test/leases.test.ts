import { mkdir, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { fileFleetStorage, findSite, findVersion, readRoutingTableFile } from '@proximation/shared';
import { deploy, deployOk, routesWithDev } from './helpers.js';

const register = (routes: string, ...args: string[]) => ['register', '--tag', 'devbuild-1', '--no-health-check', '--routes', routes, ...args];

describe('deploy register --lease', () => {
  it('makes the upstream a member with identity and lease, shown by versions; another identity is refused the same address', async () => {
    const routes = await routesWithDev();
    await deployOk(register(routes, '--upstream', 'http://10.0.0.5:8080', '--lease', '30s', '--identity', 'task-a'));
    const version = findVersion(findSite(await readRoutingTableFile(routes), 'dev'), 'devbuild-1');
    expect(version.members).toMatchObject([{ upstream: 'http://10.0.0.5:8080', identity: 'task-a', leaseMs: 30_000 }]);

    const taken = await deploy(register(routes, '--upstream', 'http://10.0.0.5:8080', '--join', '--lease', '30s', '--identity', 'task-b'));
    expect(taken.code).toBe(1);
    expect(taken.stderr).toContain('registered by task-a, whose lease is still running');
    expect(findVersion(findSite(await readRoutingTableFile(routes), 'dev'), 'devbuild-1')).toEqual(version);

    // A foreign file among the lease records is ignored, never fatal.
    const leases = join(dirname(routes), 'leases');
    await mkdir(leases, { recursive: true });
    await writeFile(join(leases, 'junk.json'), '{"not": "a lease"');
    const listing = await deployOk(['versions', '--site', 'dev', '--routes', routes]);
    expect(listing).toMatch(/member http:\/\/10\.0\.0\.5:8080 \(task-a\), lease 30s: runs until 20/);
    const json = JSON.parse(await deployOk(['versions', '--site', 'dev', '--routes', routes, '--json']));
    expect(json.versions[0].members[0]).toMatchObject({ identity: 'task-a', expired: false });
  });

  it('refuses a lease shorter than 3 s, and --identity without a lease, naming the value', async () => {
    const routes = await routesWithDev();
    const short = await deploy(register(routes, '--upstream', 'http://10.0.0.5:8080', '--lease', '2s'));
    expect(short.code).toBe(2);
    expect(short.stderr).toContain('--lease 2s is shorter than 3s');
    const alone = await deploy(register(routes, '--upstream', 'http://10.0.0.5:8080', '--identity', 'x'));
    expect(alone.code).toBe(2);
    expect(alone.stderr).toContain('--identity only applies with a lease');
    expect((await readRoutingTableFile(routes)).sites[0]!.versions).toEqual([]);
  });
});

describe('deploy deregister', () => {
  it('takes an upstream out of a version, a second time changes nothing, and it needs one way to name the upstream', async () => {
    const routes = await routesWithDev();
    await deployOk(register(routes, '--upstream', 'http://10.0.0.5:8080', '--upstream', 'http://10.0.0.6:8080', '--lease', '30s', '--identity', 'task-a'));
    const out = await deployOk(['deregister', '--tag', 'devbuild-1', '--upstream', 'http://10.0.0.5:8080', '--routes', routes]);
    expect(out).toMatch(/^took http:\/\/10\.0\.0\.5:8080 out of dev\/devbuild-1 \(now 1 upstream\)/);
    expect(findVersion(findSite(await readRoutingTableFile(routes), 'dev'), 'devbuild-1')).toMatchObject({ upstreams: ['http://10.0.0.6:8080'], members: [{ upstream: 'http://10.0.0.6:8080' }] });
    const again = JSON.parse(await deployOk(['deregister', '--site', 'dev', '--version', 'devbuild-1', '--upstream', 'http://10.0.0.5:8080', '--routes', routes, '--json']));
    expect(again).toMatchObject({ changed: false, upstreams: ['http://10.0.0.6:8080'] });
    const neither = await deploy(['deregister', '--tag', 'devbuild-1', '--routes', routes]);
    expect(neither.code).toBe(2);
    expect(neither.stderr).toContain('Give either --upstream <url> (repeatable) or --upstream-from-ecs');
    const unknown = await deploy(['deregister', '--site', 'dev', '--version', 'devbuild-9', '--upstream', 'http://10.0.0.6:8080', '--routes', routes]);
    expect(unknown.code).toBe(1);
    expect(unknown.stderr).toContain('has no version "devbuild-9"');
    const unknownSite = await deploy(['deregister', '--site', 'stage', '--version', 'devbuild-1', '--upstream', 'http://10.0.0.6:8080', '--routes', routes]);
    expect(unknownSite).toMatchObject({ code: 1, stderr: expect.stringContaining('Unknown site "stage": known sites: dev.') });
  });
});

describe('deploy status', () => {
  it('shows the sites, versions and members with their leases; --site narrows it, an unknown site is named', async () => {
    const routes = await routesWithDev();
    await deployOk(register(routes, '--upstream', 'http://10.0.0.5:8080', '--lease', '30s', '--identity', 'task-a'));
    const text = await deployOk(['status', '--routes', routes]);
    expect(text).toMatch(/^0 instances:\nsite dev \(dev\.example\.com\): active devbuild-1\n  \* devbuild-1\n      http:\/\/10\.0\.0\.5:8080  task-a, lease renewed \d+ms ago; 0 in flight, 0 WebSockets\n$/);
    const json = JSON.parse(await deployOk(['status', '--site', 'dev', '--routes', routes, '--json']));
    expect(json.sites[0].versions[0].members[0]).toMatchObject({ upstream: 'http://10.0.0.5:8080', identity: 'task-a', inFlight: 0, websockets: 0 });
    const unknown = await deploy(['status', '--site', 'nope', '--routes', routes]);
    expect(unknown.code).toBe(1);
    expect(unknown.stderr).toContain('Unknown site "nope"');
  });
});

describe('deploy wait-drained', () => {
  it('exits 1 naming what is open while a live instance reports requests in flight, 0 once its heartbeat shows none', async () => {
    const routes = await routesWithDev();
    await deployOk(register(routes, '--upstream', 'http://10.0.0.5:8080'));
    const fleet = fileFleetStorage(dirname(routes));
    const heartbeat = (inFlight: number, websockets: number) =>
      fleet.putInstance({
        id: 'proxy-1:42', host: 'proxy-1', pid: 42, addresses: ['10.0.0.9'], startedAt: new Date().toISOString(), writtenAt: new Date().toISOString(),
        periodMs: 60_000, routesGeneration: 3, workers: 1, certificates: [],
        traffic: [{ site: 'dev', version: 'devbuild-1', upstream: 'http://10.0.0.5:8080', inFlight, websockets }],
      });
    await heartbeat(2, 1);
    const open = await deploy(['wait-drained', '--site', 'dev', '--version', 'devbuild-1', '--timeout', '1s', '--routes', routes]);
    expect(open.code).toBe(1);
    expect(open.stderr).toContain('http://10.0.0.5:8080 2 request(s) and 1 WebSocket(s) in flight');
    const waiting = deploy(['wait-drained', '--site', 'dev', '--version', 'devbuild-1', '--timeout', '30s', '--routes', routes, '--json']);
    await heartbeat(0, 0);
    const done = await waiting;
    expect(done.code).toBe(0);
    expect(JSON.parse(done.stdout)).toMatchObject({ site: 'dev', version: 'devbuild-1' });
    const unknown = await deploy(['wait-drained', '--site', 'dev', '--version', 'devbuild-9', '--routes', routes]);
    expect(unknown.code).toBe(1);
    expect(unknown.stderr).toContain('has no version "devbuild-9"');
    const unknownSite = await deploy(['wait-drained', '--site', 'stage', '--version', 'devbuild-1', '--routes', routes]);
    expect(unknownSite).toMatchObject({ code: 1, stderr: expect.stringContaining('Unknown site "stage": known sites: dev.') });
  });
});
