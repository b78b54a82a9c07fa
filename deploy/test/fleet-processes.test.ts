/**
 * The fleet with real processes on one shared directory: three `proximation serve` instances, two of
 * them reading it through a bindfs mount (another client's view: no change events, only polling) and
 * one through the directory itself, where `deploy` writes; real upstreams, and `deploy run` supervising
 * the test app. Checked: a member whose `deploy run` is SIGKILLed gets no request later than lease +
 * one poll after its last renewal, although its address goes on answering 2xx (as another task's app
 * would at a reused address); a reused address is refused to another identity; wait-drained waits for
 * an open WebSocket and returns once it closes; an instance paused with SIGSTOP makes register time out
 * naming it, the change made; a SIGKILLed instance leaves both status commands after three periods;
 * malformed member and instance files are logged and ignored, nothing crashes or is lost.
 *
 * Every process is SIGKILLed in afterEach/afterAll (a paused one is continued first), and every wait
 * is bounded.
 */
import { once } from 'node:events';
import { mkdir, readFile, unlink, writeFile } from 'node:fs/promises';
import { hostname } from 'node:os';
import { dirname, join } from 'node:path';
import type tls from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket, { WebSocketServer } from 'ws';
import { fileFleetStorage, findSite, findVersion, readRoutingTableFile } from '@proximation/shared';
import { bindMount } from '../../proximation/bench/bind-mount.js';
import { ONE_ADDRESS_LIMITS } from '../../proximation/bench/proxy-proximation.js';
import { httpsRequest, managed, startUpstream, tempDir, type Upstream } from '../../proximation/test/support/fixtures.js';
import { spawnCli, startServeProcess, within, type ServeProcess } from '../../proximation/test/support/process.js';
import { deployOk, runDeploy, spawnDeploy, waitUntil } from './helpers.js';
import { keepAliveLoad, runApp } from './run-app.js';

const resources = managed();
const HOST = 'dev.example.com';
const WS_HOST = 'ws.example.com';
const POLL_MS = 250;
const LEASE_MS = 3_000;
const TOKEN = 'fleet-processes-token-0123456789';
// Health checks at /healthz, which the test app does not count as a request: what it counts is traffic.
// The load comes from one address, so the per-address limits are lifted.
const SERVE_ENV = {
  PROXIMATION_ROUTES_POLL: `${POLL_MS}ms`,
  PROXIMATION_ACCESS_LOG: 'off',
  PROXIMATION_ADMIN_TOKEN: TOKEN,
  PROXIMATION_HEALTH_PATH: '/healthz',
  ...ONE_ADDRESS_LIMITS,
};

/** Cleanups of what the whole file shares, run newest first; each one runs even if another fails. */
const shared: (() => Promise<void>)[] = [];
afterAll(async () => {
  for (const cleanup of shared.reverse()) await cleanup().catch(() => undefined);
});

let backing: string;
let mount: string;
let routes: string;
let proxies: ServeProcess[];
let fixed: Upstream;
let wsUpstream: Upstream;

beforeAll(async () => {
  const backingDir = await tempDir('proximation-fleet-backing-');
  shared.push(() => backingDir.close());
  const mountDir = await tempDir('proximation-fleet-mount-');
  shared.push(() => mountDir.close());
  const mounted = await bindMount(backingDir.path, mountDir.path);
  shared.push(() => mounted.unmount());
  backing = backingDir.path;
  mount = mountDir.path;
  routes = join(backing, 'proximation', 'routes.json');

  fixed = await startUpstream((_req, res) => res.end('static'));
  shared.push(() => fixed.close());
  wsUpstream = await startUpstream((_req, res) => res.end('ws'));
  shared.push(() => wsUpstream.close());
  const wss = new WebSocketServer({ server: wsUpstream.server });
  wss.on('connection', (socket) => socket.on('message', (data) => socket.send(`echo:${String(data)}`)));
  shared.push(async () => {
    for (const client of wss.clients) client.terminate();
    wss.close();
  });

  await deployOk(['site', 'add', 'dev', '--host', HOST, '--routes', routes]);
  await deployOk(['site', 'add', 'ws', '--host', WS_HOST, '--routes', routes]);
  await deployOk(['register', '--tag', 'devbuild-1', '--upstream', fixed.origin, '--no-health-check', '--routes', routes]);
  await deployOk(['register', '--site', 'ws', '--version', 'v1', '--upstream', wsUpstream.origin, '--no-health-check', '--routes', routes]);

  proxies = [];
  for (const dir of [mount, mount, backing]) {
    const proxy = await startServeProcess(dir, SERVE_ENV, 20_000);
    shared.push(() => proxy.kill());
    proxies.push(proxy);
  }
}, 120_000);

const fleet = () => fileFleetStorage(dirname(routes));
const instanceIdOf = (proxy: ServeProcess) => `${hostname()}:${proxy.cli.child.pid}`;

/** Resolves once every instance in `among` has a live heartbeat (or none has, with `present` false). */
async function heartbeats(among: ServeProcess[], present = true): Promise<void> {
  const ids = among.map(instanceIdOf);
  await waitUntil(async () => {
    const status = JSON.parse((await runDeploy(['status', '--routes', routes, '--json'])).stdout) as { instances: { id: string }[] };
    const listed = new Set(status.instances.map((i) => i.id));
    return ids.every((id) => listed.has(id) === present);
  }, 30_000, `the heartbeats of ${ids.join(', ')} to be ${present ? 'live' : 'gone'}`);
}

describe('a fleet of real proxy processes on one shared directory (bindfs)', () => {
  it('ignores malformed member and instance files with a log line: no instance crashes, the table and the valid records stay', async () => {
    const state = join(backing, 'proximation');
    const app = await runApp(routes, ['--tag', 'devbuild-1', '--join', '--lease', '6s', '--drain-timeout', '5s', '--identity', 'task-valid'], resources.defer);
    await app.joined();
    await mkdir(join(state, 'leases'), { recursive: true });
    await mkdir(join(state, 'instances'), { recursive: true });
    const junk: Record<string, string> = {
      'leases/not-json.json': '{"kind": "proximation/lease", "site":',
      'leases/foreign.json': '{"kind": "something else"}',
      'leases/bad-lease.json': JSON.stringify({ kind: 'proximation/lease', site: 'dev', version: 'devbuild-1', upstream: fixed.origin, identity: 'x', leaseMs: -5, renewedAt: 'yesterday' }),
      'instances/empty.json': '',
      'instances/not-json.json': '[1, 2',
    };
    for (const [file, text] of Object.entries(junk)) await writeFile(join(state, file), text);

    // The proxies that read through the mount and the one beside deploy all log each file and go on.
    const lines = (proxy: ServeProcess) => proxy.cli.stdout();
    await waitUntil(() => proxies.every((p) => ['not-json.json', 'foreign.json', 'bad-lease.json'].every((f) => lines(p).includes(f))), 20_000, 'every proxy to log the malformed lease records');
    expect(lines(proxies[0]!)).toContain('lease record ignored');
    const status = await fetch(`http://127.0.0.1:${proxies[1]!.ports.admin}/api/status`, { headers: { authorization: `Bearer ${TOKEN}` } });
    expect(status.status).toBe(200);
    const body = (await status.json()) as { instances: { id: string }[] };
    expect(body.instances.map((i) => i.id)).toEqual(expect.arrayContaining(proxies.map(instanceIdOf)));
    await waitUntil(() => lines(proxies[1]!).includes('fleet record ignored') && lines(proxies[1]!).includes('empty.json'), 10_000, 'the status API to log the malformed instance records');

    // Nothing crashed, the member stays served through every instance, deploy reads and writes on.
    for (const proxy of proxies) {
      expect(proxy.cli.child.exitCode).toBeNull();
      await waitUntil(async () => (await httpsRequest(proxy.target, HOST)).body.startsWith('app '), 10_000, 'each proxy to route to the leased member');
    }
    const listed = await runDeploy(['status', '--routes', routes]);
    expect(listed.code).toBe(0);
    expect(listed.stdout).toMatch(/task-valid, lease renewed/);
    // A write, which reads the lease records to prune expired members, past the malformed ones.
    const generation = (await readRoutingTableFile(routes)).generation;
    await deployOk(['register', '--site', 'ws', '--version', 'v0', '--upstream', wsUpstream.origin, '--no-health-check', '--no-activate', '--no-wait', '--routes', routes]);
    expect((await readRoutingTableFile(routes)).generation).toBe(generation + 1);
    const version = findVersion(findSite(await readRoutingTableFile(routes), 'dev'), 'devbuild-1');
    expect(version.members).toMatchObject([{ upstream: app.origin, identity: 'task-valid' }]);
    expect(await fleet().getLease('dev', 'devbuild-1', app.origin)).toMatchObject({ identity: 'task-valid' });
    // The operator's files are theirs to clean up: none was removed or rewritten.
    for (const [file, text] of Object.entries(junk)) expect(await readFile(join(state, file), 'utf8')).toBe(text);
    for (const file of Object.keys(junk)) await unlink(join(state, file));
    app.run.child.kill('SIGTERM');
    await within(app.exited, 30_000, 'deploy run to leave and exit on SIGTERM');
  }, 120_000);

  it('refuses a reused address to another identity while the holder\'s lease runs: a clear error, nothing changed', async () => {
    const app = await runApp(routes, ['--tag', 'devbuild-1', '--join', '--lease', '6s', '--drain-timeout', '5s', '--identity', 'task-a'], resources.defer);
    await app.joined();
    const before = await readFile(routes, 'utf8');
    const taken = await runDeploy(['register', '--tag', 'devbuild-1', '--upstream', app.origin, '--join', '--lease', '30s', '--identity', 'task-b', '--no-health-check', '--routes', routes]);
    expect(taken.code).toBe(1);
    expect(taken.stderr).toContain(`Not registering ${app.origin} for version dev/devbuild-1 as task-b: the address is a member of dev/devbuild-1 registered by task-a, whose lease is still running (until 20`);
    expect(await readFile(routes, 'utf8')).toBe(before);
    expect(await fleet().getLease('dev', 'devbuild-1', app.origin)).toMatchObject({ identity: 'task-a' });
    app.run.child.kill('SIGTERM');
    await within(app.exited, 30_000, 'deploy run to leave and exit on SIGTERM');
  }, 60_000);

  it('takes a member whose deploy run was SIGKILLed out of every instance\'s rotation within lease + one poll of its last renewal, while its address still answers', async () => {
    const app = await runApp(routes, ['--tag', 'devbuild-1', '--join', '--lease', `${LEASE_MS / 1000}s`, '--drain-timeout', `${LEASE_MS / 1000}s`, '--identity', 'task-killed'], resources.defer);
    await app.joined();
    for (const proxy of proxies) await waitUntil(async () => (await httpsRequest(proxy.target, HOST)).body.startsWith('app '), 10_000, 'each proxy to route to the member');
    const traffic = keepAliveLoad(proxies, HOST, 2);
    let lastRenewal: number;
    let killedAt: number;
    try {
      await waitUntil(() => (traffic.bodies.get('app') ?? 0) >= 20, 20_000, 'the member to get load through the proxies');
      // deploy run alone: the app goes on answering 2xx at the address, as another task's app would.
      app.run.child.kill('SIGKILL');
      killedAt = Date.now();
      await within(app.exited, 10_000, 'deploy run to die of SIGKILL');
      lastRenewal = Date.parse((await fleet().getLease('dev', 'devbuild-1', app.origin))!.renewedAt);
      const bound = lastRenewal + LEASE_MS + POLL_MS;
      // Load goes on for two seconds past the bound: a proxy that kept the member would show it.
      await waitUntil(() => Date.now() > bound + 2_000, 20_000, 'two seconds past the lease bound');
    } finally {
      await traffic.stop();
    }
    expect(traffic.failures).toEqual([]);
    const requests = (await app.appEvents()).filter((e) => e.event === 'request').map((e) => e.at);
    // It stayed in rotation after the kill (the lease still ran), so only the lease took it out.
    expect(requests.some((at) => at > killedAt)).toBe(true);
    // The bound (plus a second for a loaded machine, as in proximation/test/fleet/leases.test.ts).
    expect(Math.max(...requests) - lastRenewal).toBeLessThan(LEASE_MS + POLL_MS + 1000);
  }, 120_000);

  it('wait-drained waits while a real WebSocket through a proxy is open, then returns once it closes', async () => {
    const proxy = proxies[0]!;
    const options: WebSocket.ClientOptions & tls.ConnectionOptions = { ca: proxy.target.ca, servername: WS_HOST, headers: { host: WS_HOST } };
    const socket = new WebSocket(`wss://127.0.0.1:${proxy.ports.https}/`, options);
    resources.defer(async () => socket.terminate());
    await within(once(socket, 'open'), 10_000, 'the WebSocket through the proxy to open');
    socket.send('hello');
    expect(String((await within(once(socket, 'message'), 10_000, 'the echo'))[0])).toBe('echo:hello');
    await waitUntil(async () => {
      const instance = (await fleet().readInstances()).records.find((r) => r.pid === proxy.cli.child.pid);
      return instance?.traffic.some((t) => t.site === 'ws' && t.websockets === 1) === true;
    }, 20_000, 'the heartbeat to show the WebSocket');
    const drain = ['wait-drained', '--site', 'ws', '--version', 'v1', '--routes', routes];
    const open = await runDeploy([...drain, '--timeout', '1s']);
    expect(open.code).toBe(1);
    expect(open.stderr).toContain(`${wsUpstream.origin} 0 request(s) and 1 WebSocket(s) in flight`);

    const waiting = spawnDeploy([...drain, '--timeout', '60s', '--json']);
    resources.defer(async () => void waiting.child.kill('SIGKILL'));
    await waitUntil(() => waiting.child.pid !== undefined, 5_000, 'wait-drained to start');
    expect(waiting.child.exitCode).toBeNull();
    socket.close(1000, 'done');
    await within(once(socket, 'close'), 10_000, 'the WebSocket to close');
    const done = await within(waiting.result, 30_000, 'wait-drained to return after the close');
    expect(done.code).toBe(0);
    expect(JSON.parse(done.stdout)).toMatchObject({ site: 'ws', version: 'v1' });
  }, 90_000);

  it('times out a register naming the instance paused with SIGSTOP; the change stays made', async () => {
    // Polling every second: a heartbeat period of 5 s, so it stays live (15 s) through the 2 s wait.
    const paused = await startServeProcess(mount, { ...SERVE_ENV, PROXIMATION_ROUTES_POLL: '1s' }, 20_000);
    resources.defer(() => paused.kill());
    await heartbeats([...proxies, paused]);
    const pid = paused.cli.child.pid!;
    process.kill(pid, 'SIGSTOP');
    try {
      const late = await runDeploy(['register', '--site', 'dev', '--version', 'devbuild-9', '--upstream', fixed.origin, '--no-health-check', '--no-activate', '--converge-timeout', '2s', '--routes', routes]);
      expect(late.code).toBe(1);
      expect(late.stderr).toMatch(new RegExp(`but after 2s, 1 of 4 live proxy instances still serve an older table: ${instanceIdOf(paused).replace(/[.]/g, '\\.')} \\(generation \\d+, heartbeat \\d+m?s old\\)\\. The change stays made`));
      expect(findSite(await readRoutingTableFile(routes), 'dev').versions.map((v) => v.name)).toContain('devbuild-9');
    } finally {
      process.kill(pid, 'SIGCONT');
    }
    // Continued, it catches up: the next change converges on all four.
    expect(await deployOk(['activate', '--site', 'dev', '--version', 'devbuild-9', '--routes', routes, '--converge-timeout', '30s'])).toMatch(/served by all 4 live proxy instances\n$/);
  }, 120_000);

  it('drops a SIGKILLed instance from deploy status and proximation status once three heartbeat periods pass', async () => {
    const doomed = await startServeProcess(backing, SERVE_ENV, 20_000);
    resources.defer(() => doomed.kill());
    await heartbeats([doomed]);
    const id = instanceIdOf(doomed);
    const proximationStatus = async () => {
      const cli = spawnCli(['status', '--json'], { PROXIMATION_LETSENCRYPT_DIR: mount });
      await within(cli.exited, 30_000, 'proximation status');
      return (JSON.parse(cli.stdout()) as { instances: { id: string }[] }).instances.map((i) => i.id);
    };
    expect(await proximationStatus()).toContain(id);
    await doomed.kill();
    const record = (await fleet().readInstances()).records.find((r) => r.id === id)!;
    const expiresAt = Date.parse(record.writtenAt) + 3 * record.periodMs;
    expect(record.periodMs).toBe(5 * POLL_MS);
    await heartbeats([doomed], false);
    expect(await proximationStatus()).not.toContain(id);
    // Not before three periods: an instance that misses a beat or two stays in the fleet.
    expect(Date.now()).toBeGreaterThanOrEqual(expiresAt);
  }, 90_000);
});
