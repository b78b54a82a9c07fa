/**
 * The two storage backends side by side (issue 19): a fleet of three proximation instances on a
 * directory and a fleet of three on a local redis-server, each with the default routing-table poll (1 s).
 * Measured, per backend:
 * - switch latency: SWITCHES version switches, each written once from here (the table's lock and a
 *   fenced write, as deploy writes); from the write returning until all three instances' /healthz
 *   report the new generation (polled every 10 ms): on files that is the polling, on Redis pub/sub;
 * - writes per second: LOOPS concurrent loops of `deploy register` processes (new version each,
 *   activated, no health check, no convergence wait) for WRITE_SECONDS, which each pay Node's start;
 *   and, to show what the backend itself sustains, LOOPS writers in this process doing the same
 *   read-modify-write under the table's lock (`updateRoutingTable`) for WRITE_SECONDS;
 * - idle cost: CPU of one instance of each fleet (from /proc) over the same IDLE_SECONDS with nothing to
 *   do, and of redis-server meanwhile (serving the three Redis instances' polls and heartbeats).
 * Writes results/storage.json and prints a Markdown table. Every process it starts is killed at the end.
 */
import { mkdtemp, rm, writeFile, mkdir } from 'node:fs/promises';
import http from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  FileStorage,
  ROUTES_KEY,
  activateVersion,
  addSite,
  connectRedisStorage,
  findSite,
  registerVersion,
  updateRoutingTable,
  type Storage,
} from '@proximation/shared';
import { ChildSupervisor, type Service } from './children.js';
import { freePorts } from './ports.js';
import { serveEnv } from './proxy-proximation.js';
import { pollUntilReady } from './readiness.js';
import { cpuSecondsBetween, cpuSnapshot } from './proc-usage.js';

const proximationCli = fileURLToPath(new URL('../dist/bin/proximation.js', import.meta.url));
const deployCli = fileURLToPath(new URL('../../deploy/dist/bin/deploy.js', import.meta.url));
const INSTANCES = 3;
const SWITCHES = 10;
const LOOPS = 4;
const WRITE_SECONDS = 10;
const IDLE_SECONDS = 20;

interface Fleet {
  readonly backend: 'file' | 'redis';
  readonly storage: Storage;
  readonly key: string;
  /** What deploy needs to reach the table. */
  readonly deployArgs: string[];
  readonly instances: { service: Service; adminPort: number }[];
}

function healthGeneration(port: number): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = http.get({ host: '127.0.0.1', port, path: '/healthz', agent: false }, (res) => {
      let body = '';
      res.on('data', (c: Buffer) => (body += c.toString()));
      res.on('end', () => resolve((JSON.parse(body) as { routesGeneration: number }).routesGeneration));
    });
    req.on('error', reject);
  });
}

async function startFleet(children: ChildSupervisor, dir: string, backend: 'file' | 'redis', redisUrl: string): Promise<Fleet> {
  const le = join(dir, backend);
  await mkdir(join(le, 'proximation'), { recursive: true });
  const storage = backend === 'file' ? new FileStorage(le) : await connectRedisStorage(redisUrl, { keyPrefix: 'bench:' });
  await updateRoutingTable(storage, ROUTES_KEY, (t) =>
    registerVersion(addSite(t, { name: 'bench', hosts: ['localhost'] }), { site: 'bench', version: 'v0', upstreams: ['http://127.0.0.1:9'], registeredAt: new Date(), activate: true }),
  );
  const instances: Fleet['instances'] = [];
  for (let i = 0; i < INSTANCES; i += 1) {
    const [httpPort, httpsPort, adminPort] = (await freePorts(3)) as [number, number, number];
    // On Redis without a letsencrypt directory: no certbot copy to keep.
    const { PROXIMATION_LETSENCRYPT_DIR: _dir, ...env } = serveEnv({ httpPort, httpsPort, adminPort }, le, false);
    const service = await children.start({
      name: `proximation-${backend}-${i}`,
      command: process.execPath,
      args: [proximationCli, 'serve'],
      cwd: dir,
      env: {
        ...env,
        PROXIMATION_WORKERS: '1',
        PROXIMATION_LOG_LEVEL: 'warn',
        ...(backend === 'file' ? { PROXIMATION_LETSENCRYPT_DIR: le } : { PROXIMATION_STORAGE: redisUrl, PROXIMATION_STORAGE_PREFIX: 'bench:' }),
      },
    });
    await pollUntilReady(`${service.name} /healthz`, 60_000, [service], async () => {
      if ((await healthGeneration(adminPort)) < 1) throw new Error('no table yet');
    });
    instances.push({ service, adminPort });
  }
  const deployArgs = backend === 'file' ? ['--routes', join(le, 'proximation', 'routes.json')] : ['--storage', redisUrl, '--storage-prefix', 'bench:'];
  return { backend, storage, key: ROUTES_KEY, deployArgs, instances };
}

/** Milliseconds from each switch's write to all instances serving it. */
async function switchLatencies(fleet: Fleet): Promise<number[]> {
  await updateRoutingTable(fleet.storage, fleet.key, (t) =>
    registerVersion(t, { site: 'bench', version: 'v1', upstreams: ['http://127.0.0.1:9'], registeredAt: new Date(), activate: false }),
  );
  const latencies: number[] = [];
  for (let i = 0; i < SWITCHES; i += 1) {
    // Let the poll phase drift: a switch lands anywhere within a poll period.
    await new Promise((r) => setTimeout(r, 300 + Math.random() * 700));
    const { table } = await updateRoutingTable(fleet.storage, fleet.key, (t) => activateVersion(t, 'bench', findSite(t, 'bench').activeVersion === 'v1' ? 'v0' : 'v1'));
    const written = performance.now();
    const pending = new Set(fleet.instances.map((i) => i.adminPort));
    while (pending.size > 0) {
      for (const port of [...pending]) if ((await healthGeneration(port)) >= table.generation) pending.delete(port);
      if (pending.size > 0) await new Promise((r) => setTimeout(r, 10));
      if (performance.now() - written > 30_000) throw new Error(`${fleet.backend}: switch ${i} not served by all within 30 s`);
    }
    latencies.push(Math.round(performance.now() - written));
  }
  return latencies;
}

/** `deploy register` processes per second over LOOPS loops. */
async function writesPerSecond(children: ChildSupervisor, dir: string, fleet: Fleet): Promise<{ writes: number; perSecond: number }> {
  let writes = 0;
  let next = 0;
  const until = performance.now() + WRITE_SECONDS * 1000;
  const started = performance.now();
  await Promise.all(
    Array.from({ length: LOOPS }, async () => {
      while (performance.now() < until) {
        const tag = `w${(next += 1)}`;
        await children.run(
          {
            name: 'deploy',
            command: process.execPath,
            args: [deployCli, 'register', '--site', 'bench', '--version', tag, '--upstream', 'http://127.0.0.1:9', '--no-health-check', '--no-wait', ...fleet.deployArgs],
            cwd: dir,
          },
          60_000,
        );
        writes += 1;
      }
    }),
  );
  return { writes, perSecond: Math.round((writes / ((performance.now() - started) / 1000)) * 10) / 10 };
}

/** Locked read-modify-writes of the table per second by LOOPS writers in this process. */
async function lockedWritesPerSecond(fleet: Fleet): Promise<number> {
  let writes = 0;
  const started = performance.now();
  const until = started + WRITE_SECONDS * 1000;
  await Promise.all(
    Array.from({ length: LOOPS }, async () => {
      while (performance.now() < until) {
        await updateRoutingTable(fleet.storage, fleet.key, (t) => activateVersion(t, 'bench', findSite(t, 'bench').activeVersion === 'v1' ? 'v0' : 'v1'));
        writes += 1;
      }
    }),
  );
  return Math.round(writes / ((performance.now() - started) / 1000));
}

/** CPU milliseconds per second of each process tree over the same IDLE_SECONDS. */
async function idleCpu(pids: readonly number[], ticksPerSecond: number): Promise<number[]> {
  const before = pids.map(cpuSnapshot);
  await new Promise((r) => setTimeout(r, IDLE_SECONDS * 1000));
  return pids.map((pid, i) => Math.round((cpuSecondsBetween(before[i]!, cpuSnapshot(pid), ticksPerSecond) / IDLE_SECONDS) * 10_000) / 10);
}

const median = (values: readonly number[]): number => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)]!;

async function main(): Promise<number> {
  const dir = await mkdtemp(join(tmpdir(), 'proximation-storage-bench-'));
  const children = new ChildSupervisor(dir);
  const storages: Storage[] = [];
  try {
    const [redisPort] = (await freePorts(1)) as [number];
    const redisDir = join(dir, 'redis');
    await mkdir(redisDir);
    const redis = await children.start({
      name: 'redis-server',
      command: 'redis-server',
      args: ['--bind', '127.0.0.1', '--port', String(redisPort), '--dir', redisDir, '--save', '', '--appendonly', 'no'],
      cwd: dir,
    });
    const redisUrl = `redis://127.0.0.1:${redisPort}`;
    await pollUntilReady('redis-server', 30_000, [redis], async () => (await connectRedisStorage(redisUrl, { connectTimeoutMs: 1_000 })).close());

    const fleets = [await startFleet(children, dir, 'file', redisUrl), await startFleet(children, dir, 'redis', redisUrl)];
    storages.push(...fleets.map((f) => f.storage));
    const ticksPerSecond = Number((await children.run({ name: 'getconf', command: 'getconf', args: ['CLK_TCK'] }, 10_000)).stdout.trim());
    // Both fleets idle at once, before anything was changed: one instance of each, and redis-server.
    const [fileIdle, redisInstanceIdle, redisServerIdle] = await idleCpu([fleets[0]!.instances[0]!.service.pid, fleets[1]!.instances[0]!.service.pid, redis.pid], ticksPerSecond);
    const rows = [];
    for (const fleet of fleets) {
      const latencies = await switchLatencies(fleet);
      const writes = { ...(await writesPerSecond(children, dir, fleet)), lockedInProcessPerSecond: await lockedWritesPerSecond(fleet) };
      const idle = fleet.backend === 'file' ? { proxy: fileIdle, redisServer: null } : { proxy: redisInstanceIdle, redisServer: redisServerIdle };
      rows.push({ backend: fleet.backend, switchMs: { median: median(latencies), max: Math.max(...latencies), all: latencies }, writes, idleCpuMsPerSecond: idle });
    }
    const results = { finishedAt: new Date().toISOString(), instances: INSTANCES, switches: SWITCHES, loops: LOOPS, writeSeconds: WRITE_SECONDS, idleSeconds: IDLE_SECONDS, rows };
    await writeFile(fileURLToPath(new URL('../bench/results/storage.json', import.meta.url)), `${JSON.stringify(results, null, 2)}\n`);
    console.log(`| storage backend | switch to ${INSTANCES} instances, median / max (ms) | deploy register writes/s (${LOOPS} loops) | locked table writes/s (${LOOPS} writers, one process) | idle CPU of one instance (ms/s) | idle CPU of redis-server (ms/s) |`);
    console.log('|---|---|---|---|---|---|');
    for (const r of rows) console.log(`| ${r.backend} | ${r.switchMs.median} / ${r.switchMs.max} | ${r.writes.perSecond} | ${r.writes.lockedInProcessPerSecond} | ${r.idleCpuMsPerSecond.proxy} | ${r.idleCpuMsPerSecond.redisServer ?? '–'} |`);
    const redisRow = rows.find((r) => r.backend === 'redis')!;
    console.log(`Target: ${redisRow.switchMs.max < 1000 ? 'PASS' : 'FAIL'}: a switch reaches ${INSTANCES} instances on Redis within 1 s (worst ${redisRow.switchMs.max} ms).`);
    return redisRow.switchMs.max < 1000 ? 0 : 1;
  } finally {
    await Promise.all(storages.map((s) => s.close().catch(() => undefined)));
    children.killAllSync();
    await rm(dir, { recursive: true, force: true });
  }
}

process.exitCode = await main();
