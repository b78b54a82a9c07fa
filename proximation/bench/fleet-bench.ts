/**
 * The fleet benchmark (issue 14): three proximation instances (one process each) read one shared
 * directory through a bindfs mount, as NFS clients would; `deploy` and the renewals write it through
 * the directory itself. Site `members` has 200 leased members (30 s leases, renewed every 10 s each by
 * this process through FleetStorage, as deploy run renews them; each member a real listener), site
 * `fleet` (host localhost) a version of 4 members, each a real `deploy run` of fleet-member-app.js.
 * Measured:
 * 1. idle (no traffic), first 20 s with no member, then 30 s with the 204: writes per second into the
 *    shared directory (renames into place, by inotify on the directory itself, which also sees what
 *    comes through the mount), by kind, and each instance's CPU from /proc/<pid>/stat, in % of one core
 *    (target < 1 % with the members; it includes their health checks, every 5 s each by default);
 * 2. a fifth member joins, takes wrk load through all three instances, and its `deploy run` is SIGKILLed
 *    (with its app) while its address goes on answering: time from the SIGKILL, and from its last renewal,
 *    to the last request it receives (target < lease + 1 s);
 * 3. under wrk (keep-alive HTTP/1.1), h2load (HTTP/2) and WebSocket clients, 3 of the 4 `deploy run`s get
 *    SIGTERM, so the version scales from 4 members to 1: failed requests (target 0). WebSockets closed
 *    with 1001 by a leaving member reconnect and do not count as failures; an error or an abnormal close does.
 * Writes results/fleet.json and prints a Markdown table. Every process is killed and the mount unmounted
 * on success, error and signals (bench-process.ts).
 */
import { execFileSync } from 'node:child_process';
import { watch, type FSWatcher } from 'node:fs';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { ConnectionOptions } from 'node:tls';
import { fileURLToPath } from 'node:url';
import WebSocket from 'ws';
import { fileFleetStorage, serializeRoutingTable, writeFileAtomic, type RoutingTable } from '@proximation/shared';
import { benchMain, progress } from './bench-process.js';
import { bindMount } from './bind-mount.js';
import type { ChildSupervisor, Service } from './children.js';
import { runH2load, runWrk, type LoadResult } from './load-generators.js';
import { freePorts } from './ports.js';
import { cpuSecondsBetween, cpuSnapshot } from './proc-usage.js';
import { ONE_ADDRESS_LIMITS } from './proxy-proximation.js';
import { fetchLocal, pollUntilReady } from './readiness.js';

const proximationCli = fileURLToPath(new URL('../dist/bin/proximation.js', import.meta.url));
const deployCli = fileURLToPath(new URL('../../deploy/dist/bin/deploy.js', import.meta.url));
const memberApp = fileURLToPath(new URL('fleet-member-app.js', import.meta.url));
const RESULTS = fileURLToPath(new URL('../bench/results/fleet.json', import.meta.url));

const INSTANCES = 3;
const MEMBERS = 200;
const MEMBER_LEASE_MS = 30_000;
const RUN_LEASE_S = 10;
const RUN_DRAIN_S = 5;
const SCALE_MEMBERS = 4;
const IDLE_S = 30;
const IDLE_BASE_S = 20;
const SCALE_LOAD_S = 25;
const WEBSOCKET_CLIENTS = 6;

interface Instance {
  service: Service;
  httpsPort: number;
  adminPort: number;
}

/**
 * A listener per member on 127.0.0.1, all answering alike; `last` is when each port last got a request,
 * `lastHealthCheck` when it last got a proxy's health check (GET /healthz, kept apart: it is no traffic).
 */
async function listeners(count: number, name: string): Promise<{ origins: string[]; last: Map<number, number>; lastHealthCheck: Map<number, number>; close(): void }> {
  const last = new Map<number, number>();
  const lastHealthCheck = new Map<number, number>();
  const servers = await Promise.all(
    Array.from({ length: count }, () => new Promise<http.Server>((resolve) => {
      const server = http.createServer((req, res) => {
        (req.url === '/healthz' ? lastHealthCheck : last).set((server.address() as AddressInfo).port, Date.now());
        res.end(name);
      });
      server.listen(0, '127.0.0.1', () => resolve(server));
    })),
  );
  return {
    origins: servers.map((s) => `http://127.0.0.1:${(s.address() as AddressInfo).port}`),
    last,
    lastHealthCheck,
    close: () => {
      for (const server of servers) {
        server.closeAllConnections();
        server.close();
      }
    },
  };
}

/** Site fleet with no version yet, site members with `origins` as leased members (none: no version). */
function membersTable(origins: readonly string[], generation: number, now: Date): RoutingTable {
  const joinedAt = now.toISOString();
  const version = {
    name: 'm1',
    upstreams: [...origins],
    registeredAt: joinedAt,
    members: origins.map((upstream, i) => ({ upstream, identity: `member-${i}`, leaseMs: MEMBER_LEASE_MS, joinedAt })),
  };
  return {
    schemaVersion: 1,
    generation,
    sites: [
      { name: 'fleet', hosts: ['localhost'], activeVersion: null, history: [], versions: [] },
      { name: 'members', hosts: ['members.example.com'], activeVersion: origins.length === 0 ? null : 'm1', history: [], versions: origins.length === 0 ? [] : [version] },
    ],
  } as RoutingTable;
}

/** Renames into place under the state directory, counted by kind, while it watches. */
function countWrites(state: string): { counts: Map<string, number>; stop(): void } {
  const counts = new Map<string, number>();
  const watchers: FSWatcher[] = [];
  for (const sub of ['', 'leases', 'instances', 'locks']) {
    try {
      watchers.push(watch(join(state, sub), (event, name) => {
        const file = String(name);
        if (event !== 'rename' || file.endsWith('.tmp')) return;
        const kind = sub === '' ? file : sub;
        counts.set(kind, (counts.get(kind) ?? 0) + 1);
      }));
    } catch {
      // a directory that does not exist (no locks yet) has no writes
    }
  }
  return { counts, stop: () => watchers.forEach((w) => w.close()) };
}

interface Idle {
  seconds: number;
  writesPerSecond: Record<string, number>;
  totalWritesPerSecond: number;
  cpuPercentOfCore: number[];
}

/** `seconds` without traffic: writes into `state` by kind, and each instance's CPU in % of a core. */
async function idle(instances: readonly Instance[], state: string, seconds: number): Promise<Idle> {
  const ticks = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }));
  const round = (n: number) => Math.round(n * 100) / 100;
  const writes = countWrites(state);
  const before = instances.map((i) => cpuSnapshot(i.service.pid));
  const start = performance.now();
  await sleep(seconds * 1000);
  const elapsed = (performance.now() - start) / 1000;
  const cpu = instances.map((inst, n) => (100 * cpuSecondsBetween(before[n]!, cpuSnapshot(inst.service.pid), ticks)) / elapsed);
  writes.stop();
  return {
    seconds: Math.round(elapsed),
    writesPerSecond: Object.fromEntries([...writes.counts].sort().map(([kind, n]) => [kind, round(n / elapsed)])),
    totalWritesPerSecond: round([...writes.counts.values()].reduce((a, b) => a + b, 0) / elapsed),
    cpuPercentOfCore: cpu.map(round),
  };
}

/** Resolves once the service's log says deploy run joined. */
async function joined(service: Service): Promise<void> {
  await pollUntilReady(`${service.name} to join`, 60_000, [service], async () => {
    if (!/deploy run: (registered|added to)/.test(await readFile(service.logPath, 'utf8'))) throw new Error('not joined yet');
  });
}

/** WebSocket clients that send a message every 100 ms, reconnecting after a 1000/1001 close. */
function websocketLoad(instances: readonly Instance[], ca: string) {
  let running = true;
  let echoes = 0;
  let opened = 0;
  let goingAway = 0;
  const failures: string[] = [];
  const clients = Array.from({ length: WEBSOCKET_CLIENTS }, (_, i) => {
    const port = instances[i % instances.length]!.httpsPort;
    return (async () => {
      while (running) {
        const options: WebSocket.ClientOptions & ConnectionOptions = { ca, servername: 'localhost', headers: { host: 'localhost' } };
        const socket = new WebSocket(`wss://127.0.0.1:${port}/`, options);
        await new Promise<void>((resolve) => {
          let timer: NodeJS.Timeout | undefined;
          socket.on('open', () => {
            opened++;
            timer = setInterval(() => socket.send('ping'), 100);
          });
          socket.on('message', () => echoes++);
          let error = '';
          socket.on('error', (err) => (error = `: ${err.message}`));
          socket.on('close', (code) => {
            clearInterval(timer);
            if (code === 1001) goingAway++;
            else if (code !== 1000 || error !== '') failures.push(`WebSocket to ${port} closed with ${code}${error}`);
            resolve();
          });
          const stopping = setInterval(() => {
            if (!running) {
              clearInterval(stopping);
              socket.close(1000);
            }
          }, 100);
          socket.once('close', () => clearInterval(stopping));
        });
      }
    })();
  });
  return {
    async stop() {
      running = false;
      await Promise.all(clients);
      return { opened, echoes, goingAway, failures };
    },
  };
}

async function measure(children: ChildSupervisor, workDir: string): Promise<boolean> {
  const backing = join(workDir, 'backing');
  const mountPoint = join(workDir, 'mount');
  await mkdir(join(backing, 'proximation'), { recursive: true });
  await mkdir(mountPoint);
  const mount = await bindMount(backing, mountPoint);
  const members = await listeners(MEMBERS, 'member');
  const victim = await listeners(1, 'victim');
  let renewer: NodeJS.Timeout | undefined;
  let renewing: Promise<void> = Promise.resolve();
  try {
    const state = join(backing, 'proximation');
    const routes = join(state, 'routes.json');
    const fleet = fileFleetStorage(state);
    await writeFileAtomic(routes, serializeRoutingTable(membersTable([], 1, new Date())));

    progress(`fleet bench: ${INSTANCES} instances on a bindfs mount of ${backing}, ${MEMBERS} leased members`);
    const ports = await freePorts(INSTANCES * 3);
    const instances: Instance[] = [];
    for (let i = 0; i < INSTANCES; i++) {
      const [http, https, admin] = ports.slice(i * 3, i * 3 + 3) as [number, number, number];
      const service = await children.start({
        name: `proximation-${i}`,
        command: process.execPath,
        args: [proximationCli, 'serve'],
        cwd: workDir,
        env: {
          PATH: process.env.PATH,
          PROXIMATION_HTTP_PORT: String(http),
          PROXIMATION_HTTPS_PORT: String(https),
          PROXIMATION_ADMIN_PORT: String(admin),
          PROXIMATION_LISTEN_ADDRESS: '127.0.0.1',
          PROXIMATION_LETSENCRYPT_DIR: mountPoint,
          PROXIMATION_WORKERS: '1',
          PROXIMATION_ACCESS_LOG: 'off',
          PROXIMATION_LOG_LEVEL: 'warn',
          // The members answer health checks at /healthz, so that what they count as requests is traffic.
          PROXIMATION_HEALTH_PATH: '/healthz',
          ...ONE_ADDRESS_LIMITS,
        },
      });
      await pollUntilReady(`proximation-${i} /healthz`, 30_000, [service], async () => {
        const { status } = await fetchLocal(admin, '/healthz');
        if (status !== 200) throw new Error(`/healthz answered ${status}`);
      });
      instances.push({ service, httpsPort: https, adminPort: admin });
    }
    const ca = await readFile(join(state, 'local-ca', 'root.pem'), 'utf8');

    // 0. Idle with no member, for comparison.
    progress(`idle for ${IDLE_BASE_S} s with no member`);
    await sleep(3_000);
    const base = await idle(instances, state, IDLE_BASE_S);

    // The 200 members join (one table write, as deploy register --join would make them), and renew.
    await writeFileAtomic(routes, serializeRoutingTable(membersTable(members.origins, 2, new Date())));
    // Renewals spread evenly: one member every 50 ms, so each one every 10 s (a third of its lease).
    const renew = (i: number) => fleet.putLease({ site: 'members', version: 'm1', upstream: members.origins[i]!, identity: `member-${i}`, leaseMs: MEMBER_LEASE_MS, renewedAt: new Date().toISOString() });
    await Promise.all(members.origins.map((_, i) => renew(i)));
    let next = 0;
    renewer = setInterval(() => {
      renewing = renew(next++ % MEMBERS).catch((err: unknown) => progress(`renewal failed: ${String(err)}`));
    }, (MEMBER_LEASE_MS / 3) / MEMBERS);

    const runMember = async (name: string, upstream: string, app: string[], env: NodeJS.ProcessEnv = {}) =>
      children.start({
        name,
        command: process.execPath,
        args: [deployCli, 'run', '--routes', routes, '--site', 'fleet', '--version', 'scale', '--join', '--upstream', upstream, '--health-path', '/healthz',
          '--lease', `${RUN_LEASE_S}s`, '--drain-timeout', `${RUN_DRAIN_S}s`, '--identity', name, '--', ...app],
        env: { PATH: process.env.PATH, ...env },
        cwd: workDir,
      });
    const appPorts = await freePorts(SCALE_MEMBERS);
    const scale: Service[] = [];
    for (const [i, port] of appPorts.entries()) {
      const member = await runMember(`scale-${i}`, `http://127.0.0.1:${port}`, [process.execPath, memberApp], { APP_PORT: String(port) });
      // The first registers the version; the others join it.
      if (i === 0) await joined(member);
      scale.push(member);
    }
    await Promise.all(scale.map(joined));
    for (const instance of instances) {
      await pollUntilReady(`proximation on ${instance.httpsPort} to route to the members`, 30_000, [instance.service], async () => {
        const { status } = await fetchLocal(instance.httpsPort, '/', { ca, servername: 'localhost' });
        if (status !== 200) throw new Error(`answered ${status}`);
      });
    }

    // 1. Idle with the members.
    progress(`idle for ${IDLE_S} s with ${MEMBERS + SCALE_MEMBERS} members`);
    await sleep(3_000);
    const loaded = await idle(instances, state, IDLE_S);

    // 2. SIGKILL of a member whose address goes on answering.
    progress('a member joins, takes load, and its deploy run is SIGKILLed');
    const victimOrigin = victim.origins[0]!;
    const victimPort = Number(new URL(victimOrigin).port);
    const doomed = await runMember('victim', victimOrigin, [process.execPath, '-e', 'setInterval(() => {}, 1 << 30)']);
    await joined(doomed);
    const killLoad = Promise.all(instances.map((inst) => runWrk(children, undefined, { port: inst.httpsPort, path: '/', seconds: RUN_LEASE_S + 6, connections: 4 })));
    await pollUntilReady('the new member to get requests', 20_000, [], async () => {
      if (!victim.last.has(victimPort)) throw new Error('no request yet');
    });
    await sleep(1_000);
    process.kill(-doomed.pid, 'SIGKILL');
    const killedAt = Date.now();
    const lastRenewal = Date.parse((await fleet.getLease('fleet', 'scale', victimOrigin))!.renewedAt);
    const killLoadResults = await killLoad;
    const lastRequest = victim.last.get(victimPort)!;
    const lastHealthCheck = victim.lastHealthCheck.get(victimPort)!;

    // 3. Scale-in from 4 members to 1 under load.
    progress(`scale-in: ${SCALE_MEMBERS - 1} of ${SCALE_MEMBERS} deploy runs get SIGTERM under wrk, h2load and WebSocket load`);
    const sockets = websocketLoad(instances, ca);
    const wrk = runWrk(children, undefined, { port: instances[0]!.httpsPort, path: '/', seconds: SCALE_LOAD_S, connections: 8 });
    const h2 = runH2load(children, undefined, { port: instances[1]!.httpsPort, path: '/', seconds: SCALE_LOAD_S, connections: 4 }, workDir);
    await sleep(5_000);
    const leaving = scale.slice(1);
    const termAt = Date.now();
    for (const member of leaving) process.kill(member.pid, 'SIGTERM');
    await pollUntilReady('the leaving deploy runs to exit', 60_000, [], async () => {
      if (leaving.some((m) => m.exitStatus() === undefined)) throw new Error('still running');
    });
    const leftAfterMs = Date.now() - termAt;
    const [wrkResult, h2Result] = await Promise.all([wrk, h2]);
    const ws = await sockets.stop();
    const table = JSON.parse(await readFile(routes, 'utf8')) as RoutingTable;
    const remaining = table.sites.find((s) => s.name === 'fleet')!.versions.find((v) => v.name === 'scale')!.upstreams.length;
    const exits = leaving.map((m) => m.exitStatus());
    const drains = await Promise.all(leaving.map(async (m) => /deploy run: (drained after [^;]+|.*did not drain[^\n]*)/.exec(await readFile(m.logPath, 'utf8'))?.[1] ?? 'no drain line'));

    const failed = (r: LoadResult) => r.errors;
    if (failed(wrkResult) + failed(h2Result) > 0) {
      for (const instance of instances) progress(`${instance.service.name}'s log ends:\n${instance.service.logTail()}`);
    }
    const requestFailures = failed(wrkResult) + failed(h2Result) + ws.failures.length;
    const killBoundMs = RUN_LEASE_S * 1000 + 1000;
    const results = {
      finishedAt: new Date().toISOString(),
      settings: { instances: INSTANCES, members: MEMBERS, memberLeaseMs: MEMBER_LEASE_MS, runLeaseS: RUN_LEASE_S, runDrainS: RUN_DRAIN_S, routesPoll: '1s (default)', heartbeat: '5s (default)', health: 'every 5 s per upstream (default)' },
      idleWithoutMembers: base,
      idle: loaded,
      kill: {
        fromKillMs: lastRequest - killedAt,
        fromLastRenewalMs: lastRequest - lastRenewal,
        boundMs: killBoundMs,
        loadErrors: killLoadResults.reduce((n, r) => n + r.errors, 0),
        // Health checks go on while the expired member is in the table, until the next write removes it.
        lastHealthCheckFromKillMs: lastHealthCheck - killedAt,
      },
      scaleIn: {
        from: SCALE_MEMBERS, to: remaining, leftAfterMs, exits, drains,
        wrk: wrkResult, h2load: h2Result, websockets: { opened: ws.opened, echoes: ws.echoes, closedGoingAway: ws.goingAway, failures: ws.failures.slice(0, 10) },
        failedRequests: requestFailures,
      },
    };
    await writeFile(RESULTS, `${JSON.stringify(results, null, 2)}\n`);
    const idleOk = loaded.cpuPercentOfCore.every((p) => p < 1);
    const killOk = lastRequest - killedAt < killBoundMs;
    const failOk = requestFailures === 0 && remaining === 1;
    console.log(`| fleet: ${INSTANCES} instances, ${MEMBERS} leased members, one bindfs-mounted directory | value | target |`);
    console.log('|---|---|---|');
    const perKind = (i: Idle) => Object.entries(i.writesPerSecond).map(([k, v]) => `${k} ${v}`).join(', ');
    const cpu = (i: Idle) => i.cpuPercentOfCore.map((p) => `${p} %`).join(', ');
    console.log(`| writes into the shared directory, idle, no member | ${base.totalWritesPerSecond}/s (${perKind(base)}) | |`);
    console.log(`| writes into the shared directory, idle, ${MEMBERS + SCALE_MEMBERS} members | ${loaded.totalWritesPerSecond}/s (${perKind(loaded)}) | |`);
    console.log(`| idle CPU per instance, no member | ${cpu(base)} of a core | |`);
    console.log(`| idle CPU per instance, ${MEMBERS + SCALE_MEMBERS} members (heartbeats, lease and table polling, health checks) | ${cpu(loaded)} of a core | < 1 % |`);
    console.log(`| SIGKILL of a member (lease ${RUN_LEASE_S} s) to its last request | ${results.kill.fromKillMs} ms (${results.kill.fromLastRenewalMs} ms after its last renewal; health checks until ${results.kill.lastHealthCheckFromKillMs} ms) | < ${killBoundMs} ms |`);
    console.log(`| scale-in 4 → ${remaining} members by SIGTERM to deploy run, failed requests | ${requestFailures} (wrk ${wrkResult.requests} ok / ${wrkResult.errors} failed, h2load ${h2Result.requests} / ${h2Result.errors}, WebSockets ${ws.opened} opened, ${ws.goingAway} closed 1001 and reopened, ${ws.failures.length} failed) | 0 |`);
    console.log(`\nTargets: ${idleOk ? 'PASS' : 'FAIL'} idle CPU; ${killOk ? 'PASS' : 'FAIL'} SIGKILL bound; ${failOk ? 'PASS' : 'FAIL'} no failed request in the scale-in.`);
    return idleOk && killOk && failOk;
  } finally {
    clearInterval(renewer);
    await renewing;
    members.close();
    victim.close();
    children.killAllSync();
    await mount.unmount();
  }
}

benchMain(measure);
