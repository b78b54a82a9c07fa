/**
 * `proximation serve --workers 2` as real processes: a primary and two workers, on this Node (20:
 * node:cluster's distribution) and, in the CI's second run, on the image's Node (SO_REUSEPORT sockets).
 * Which worker served a request is read from its access log line (`worker`: its slot).
 */
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import fs from 'node:fs/promises';
import net from 'node:net';
import path from 'node:path';
import type tls from 'node:tls';
import { describe, expect, it } from 'vitest';
import WebSocket, { WebSocketServer } from 'ws';
import { distributionFor } from '../../src/cluster/distribution.js';
import { httpRequest, httpsRequest, managed, table, tempDir, writeRoutes, type Upstream } from '../support/fixtures.js';
import { freePorts, spawnCli, startServeProcess, waitUntil, within, type ServeProcess } from '../support/process.js';

const resources = managed();

type Line = Record<string, unknown>;

function lines(proc: ServeProcess): Line[] {
  return proc.cli.stdout().trim().split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as Line);
}

/** The worker slots whose access log lines name `host`. */
function servedBy(proc: ServeProcess, host: string): Set<unknown> {
  return new Set(lines(proc).filter((l) => l.part === 'access' && l.host === host).map((l) => l.worker));
}

interface WorkerHealth {
  worker: number;
  pid: number;
  state: string;
  routesGeneration: number;
}

async function health(proc: ServeProcess): Promise<{ httpStatus: number; status: string; workers: WorkerHealth[] }> {
  const res = await httpRequest(proc.ports.admin, 'localhost', '/healthz');
  return { httpStatus: res.status, ...(JSON.parse(res.body) as { status: string; workers: WorkerHealth[] }) };
}

async function metric(proc: ServeProcess, series: string): Promise<number | undefined> {
  const res = await httpRequest(proc.ports.admin, 'localhost', '/metrics');
  const line = res.body.split('\n').find((l) => l.startsWith(`${series} `));
  return line === undefined ? undefined : Number(line.slice(series.length + 1));
}

/** The path of the tests' requests: the workers' active health checks GET / meanwhile. */
const PATH = '/counted';

/** An upstream that counts the requests for PATH. */
async function upstream(name: string): Promise<Upstream & { hits: () => number }> {
  let hits = 0;
  const u = await resources.upstream((req, res) => {
    if (req.url === PATH) hits++;
    res.end(`from ${name}`);
  });
  return { ...u, hits: () => hits };
}

async function serveWorkers(routes: Parameters<typeof writeRoutes>[1], env: NodeJS.ProcessEnv = {}): Promise<{ proc: ServeProcess; routesPath: string }> {
  const dir = await tempDir();
  resources.defer(() => dir.close());
  const letsencryptDir = path.join(dir.path, 'le');
  const routesPath = path.join(letsencryptDir, 'proximation', 'routes.json');
  await writeRoutes(routesPath, routes);
  // Three processes starting on a busy 2-CPU machine can take longer than one.
  const proc = await startServeProcess(letsencryptDir, { PROXIMATION_WORKERS: '2', PROXIMATION_ROUTES_POLL: '100ms', ...env }, 30_000);
  resources.defer(() => proc.kill());
  return { proc, routesPath };
}

/** `openssl s_client` sending one HTTP/1.1 request, saving or resuming a session; whether it resumed. */
async function sClient(port: number, host: string, session: { out: string } | { in: string }): Promise<boolean> {
  const args = ['s_client', '-connect', `127.0.0.1:${port}`, '-servername', host, '-ign_eof'];
  args.push(...('out' in session ? ['-sess_out', session.out] : ['-sess_in', session.in]));
  const child = spawn('openssl', args, { stdio: ['pipe', 'pipe', 'pipe'] });
  let out = '';
  child.stdout.on('data', (c: Buffer) => (out += c.toString()));
  // The server closes after the response (connection: close), by when the TLS 1.3 tickets have arrived.
  child.stdin.end(`GET ${PATH} HTTP/1.1\r\nHost: ${host}\r\nConnection: close\r\n\r\n`);
  const [code] = (await once(child, 'close')) as [number];
  expect(out, `openssl s_client exited ${code}; its output ends: ${out.slice(-1500)}`).toContain('HTTP/1.1 200');
  return /^Reused, /m.test(out);
}

describe('several workers under one primary', { timeout: 90_000 }, () => {
  it('spreads requests over every worker, and every worker serves a new routing table and the certificate the primary issued for it', async () => {
    const one = await upstream('one');
    const { proc, routesPath } = await serveWorkers(table([{ name: 'app', hosts: ['app.test'], upstreams: [one.origin] }]));
    expect(lines(proc)).toContainEqual(expect.objectContaining({ msg: 'proximation is serving', workers: 2, distribution: distributionFor({ httpPort: 1, httpsPort: 1 }) }));

    for (let i = 0; i < 20; i++) expect((await httpsRequest(proc.target, 'app.test', { path: PATH })).body).toBe('from one');
    expect(one.hits()).toBe(20);
    await waitUntil(() => servedBy(proc, 'app.test').size === 2, 'access lines of both workers', 5000);
    // /metrics sums the workers' counters.
    expect(await metric(proc, 'proximation_requests_total{site="app",version="v1",status="200"}')).toBe(20);
    expect(await metric(proc, 'proximation_workers_serving')).toBe(2);

    const two = await upstream('two');
    await writeRoutes(routesPath, table([
      { name: 'app', hosts: ['app.test'], upstreams: [one.origin] },
      { name: 'new', hosts: ['new.test'], upstreams: [two.origin] },
    ], 2));
    await waitUntil(async () => (await health(proc)).workers.every((w) => w.routesGeneration === 2), 'every worker to report generation 2', 5000);
    for (let i = 0; i < 20; i++) {
      const res = await httpsRequest(proc.target, 'new.test', { path: PATH });
      expect(res.status).toBe(200);
      expect(res.body).toBe('from two');
    }
    expect(two.hits()).toBe(20);
    await waitUntil(() => servedBy(proc, 'new.test').size === 2, 'both workers to serve new.test', 5000);
    // Issued once, by the primary (its lines carry no worker slot); the workers got it as a message.
    const issued = lines(proc).filter((l) => l.msg === 'issuing certificate' && l.host === 'new.test');
    expect(issued).toHaveLength(1);
    expect(issued[0]).not.toHaveProperty('worker');
  });

  it('resumes a TLS session on whichever worker the next connection reaches: 20 reconnections, all resumed', async () => {
    const one = await upstream('one');
    const { proc } = await serveWorkers(table([{ name: 'app', hosts: ['app.test'], upstreams: [one.origin] }]));
    const dir = await tempDir();
    resources.defer(() => dir.close());
    const session = path.join(dir.path, 'session.pem');
    expect(await sClient(proc.ports.https, 'app.test', { out: session })).toBe(false);
    const resumed: boolean[] = [];
    for (let i = 0; i < 20; i++) resumed.push(await sClient(proc.ports.https, 'app.test', { in: session }));
    expect(resumed).toEqual(Array.from({ length: 20 }, () => true));
    expect(one.hits()).toBe(21);
    await waitUntil(() => servedBy(proc, 'app.test').size === 2, 'the resumed connections to reach both workers', 5000);
  });

  it('restarts a worker killed with SIGKILL under load; the other keeps serving and only requests in flight on the dead one fail', async () => {
    const one = await upstream('one');
    const { proc } = await serveWorkers(table([{ name: 'app', hosts: ['app.test'], upstreams: [one.origin] }]));
    const victim = (await health(proc)).workers[0]!;
    const survivor = (await health(proc)).workers[1]!;

    const CLIENTS = 4;
    const outcomes: boolean[] = [];
    // On Node 20, a connection node:cluster's primary was handing to the worker as it died is never
    // answered nor closed (Node does not take it back): that request fails by the client's timeout.
    const request = (): Promise<boolean> => {
      const response = httpsRequest(proc.target, 'app.test');
      response.catch(() => {});
      return within(response, 10_000, 'a response').then((r) => r.status === 200, () => false);
    };
    let running = true;
    const clients = Array.from({ length: CLIENTS }, async () => {
      while (running) outcomes.push(await request());
    });
    await waitUntil(() => outcomes.length >= 40, '40 requests before the kill', 10_000);
    process.kill(victim.pid, 'SIGKILL');
    await waitUntil(async () => {
      const now = await health(proc);
      return now.httpStatus === 200 && now.workers[0]!.pid !== victim.pid && now.workers[0]!.state === 'serving';
    }, 'the killed worker to be replaced and /healthz to answer 200 again', 15_000);
    const atRestart = outcomes.length;
    await waitUntil(() => outcomes.length >= atRestart + 40, '40 requests after the restart', 10_000);
    running = false;
    await Promise.all(clients);

    const failures = outcomes.filter((ok) => !ok).length;
    expect(failures, `${failures} of ${outcomes.length} requests failed`).toBeLessThanOrEqual(CLIENTS);
    const after = await health(proc);
    expect(after.workers[1]!.pid, 'the other worker was not restarted').toBe(survivor.pid);
    expect(await metric(proc, 'proximation_worker_restarts_total{worker="1"}')).toBe(1);
    expect(await metric(proc, 'proximation_worker_restarts_total{worker="2"}')).toBe(0);
    const log = lines(proc);
    const died = log.findIndex((l) => l.msg === 'worker was killed by SIGKILL; restarting it' && l.worker === 1 && l.pid === victim.pid);
    expect(died, 'the death is logged with the worker and its pid').toBeGreaterThan(-1);
    const back = log.findIndex((l, i) => i > died && l.msg === 'worker is serving' && l.worker === 1);
    expect(back).toBeGreaterThan(died);
    // Between the death and the replacement, the other worker went on answering.
    expect(log.slice(died, back).some((l) => l.part === 'access' && l.worker === 2 && l.status === 200)).toBe(true);
  });

  it('drains every worker on SIGTERM: in-flight requests on each finish, WebSockets get 1001, and the primary exits last', async () => {
    const held: (() => void)[] = [];
    const slow = await resources.upstream((_req, res) => void held.push(() => res.end('finished')));
    const wss = new WebSocketServer({ server: slow.server });
    const upstreamClose = new Promise<number>((resolve) => wss.on('connection', (ws) => ws.on('close', (code) => resolve(code))));
    const { proc } = await serveWorkers(table([{ name: 'app', hosts: ['app.test'], upstreams: [slow.origin] }]), { PROXIMATION_DRAIN_TIMEOUT: '20s' });

    // Requests, each on its own connection, until both workers have one in flight.
    const responses: ReturnType<typeof httpsRequest>[] = [];
    const inFlightOn = async (worker: number): Promise<number> => (await metric(proc, `proximation_worker_connections{worker="${worker}"}`)) ?? 0;
    for (let i = 0; i < 30 && ((await inFlightOn(1)) === 0 || (await inFlightOn(2)) === 0); i++) {
      responses.push(httpsRequest(proc.target, 'app.test'));
      await waitUntil(() => held.length === responses.length, 'the upstream to receive the request', 5000);
    }
    expect([await inFlightOn(1), await inFlightOn(2)].every((n) => n > 0), 'both workers have a request in flight').toBe(true);
    const wsOptions: WebSocket.ClientOptions & tls.ConnectionOptions = { servername: 'app.test', ca: proc.target.ca, headers: { host: 'app.test' } };
    const ws = new WebSocket(`wss://127.0.0.1:${proc.ports.https}/`, wsOptions);
    await once(ws, 'open');
    const clientClose = once(ws, 'close') as Promise<[number, Buffer]>;

    proc.cli.child.kill('SIGTERM');
    await waitUntil(() => lines(proc).filter((l) => l.msg === 'draining' && l.worker !== undefined).length === 2, 'both workers to start draining', 5000);
    expect((await health(proc)).httpStatus).toBe(503);
    for (const release of held) release();
    for (const res of await Promise.all(responses)) expect([res.status, res.body]).toEqual([200, 'finished']);
    expect((await clientClose)[0]).toBe(1001);
    expect(await upstreamClose).toBe(1001);

    expect(await proc.cli.exited).toEqual({ code: 0, signal: null });
    const log = lines(proc);
    expect(log.filter((l) => l.msg === 'stopped' && l.worker !== undefined).map((l) => l.worker).sort()).toEqual([1, 2]);
    expect(log.at(-1)).toMatchObject({ msg: 'stopped' });
    expect(log.at(-1)).not.toHaveProperty('worker');
  });

  it('stops with a clear error, instead of restarting forever, when workers keep failing at start', async () => {
    const dir = await tempDir();
    resources.defer(() => dir.close());
    const letsencryptDir = path.join(dir.path, 'le');
    await writeRoutes(path.join(letsencryptDir, 'proximation', 'routes.json'), table([{ name: 'app', hosts: ['app.test'], upstreams: ['http://127.0.0.1:9'] }]));
    // Something else holds the HTTPS port: no worker can listen.
    const squatter = net.createServer();
    await new Promise<void>((resolve) => squatter.listen(0, '127.0.0.1', resolve));
    resources.defer(() => new Promise((resolve) => squatter.close(() => resolve())));
    const taken = (squatter.address() as net.AddressInfo).port;
    const [http, admin] = (await freePorts(2)) as [number, number];
    const cli = spawnCli(['serve', '--workers', '2'], {
      PROXIMATION_HTTP_PORT: String(http),
      PROXIMATION_HTTPS_PORT: String(taken),
      PROXIMATION_ADMIN_PORT: String(admin),
      PROXIMATION_LISTEN_ADDRESS: '127.0.0.1',
      PROXIMATION_LETSENCRYPT_DIR: letsencryptDir,
      PROXIMATION_LOG_FORMAT: 'json',
    });
    resources.defer(async () => {
      cli.child.kill('SIGKILL');
      await cli.exited;
    });
    expect(await cli.exited).toEqual({ code: 1, signal: null });
    expect(cli.stderr()).toMatch(/worker processes keep exiting before they serve \(5 times in a row\)/);
    expect(cli.stderr()).toContain(`cannot listen on 127.0.0.1:${taken}: another process listens there`);
  });
});

describe('--workers', () => {
  it('refuses 0, negative, non-numbers and more than four per CPU at start, naming the value', async () => {
    const { availableCpus } = await import('../../src/cluster/cpus.js');
    const tooMany = String(availableCpus() * 4 + 1);
    const dir = await tempDir();
    resources.defer(() => dir.close());
    // A malformed flag value is a usage error (exit 2), as for every other flag.
    for (const value of ['0', '-1', 'abc', '1.5', tooMany]) {
      const cli = spawnCli(['serve', `--workers=${value}`], { PROXIMATION_LETSENCRYPT_DIR: dir.path });
      expect(await cli.exited).toEqual({ code: 2, signal: null });
      expect(cli.stderr()).toContain(`--workers=${JSON.stringify(value)} is not valid: expected a whole number of worker processes from 1 to ${availableCpus() * 4}`);
    }
    await expect(fs.readdir(dir.path)).resolves.toEqual([]);
  });
});
