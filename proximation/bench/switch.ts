/**
 * The version-switch benchmark: two proximation instances share one state directory; A takes the admin
 * API, B only polls the routing table. Under a steady keep-alive load on both, `deploy register --proxy A`
 * switches site `bench` from v1 to v2 (health-gated), then `deploy rollback` goes back. Measured, from the
 * moment each deploy command returns: how long until every request sent to A, and to B, reaches the new
 * version (the last request answered by the old one, by its send time), and the failed requests over the
 * whole run. Targets: B ≤ 2 s, 0 failures. Writes results/switch.json and prints a Markdown table.
 */
import { writeFile, mkdir, readFile, mkdtemp, rm } from 'node:fs/promises';
import http from 'node:http';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ChildSupervisor } from './children.js';
import { freePorts } from './ports.js';
import { ONE_ADDRESS_LIMITS } from './proxy-proximation.js';
import { fetchLocal, pollUntilReady } from './readiness.js';

const proximationCli = fileURLToPath(new URL('../dist/bin/proximation.js', import.meta.url));
const deployCli = fileURLToPath(new URL('../../deploy/dist/bin/deploy.js', import.meta.url));
const CLIENTS_PER_INSTANCE = 8;
const SETTLE_MS = 3_000;
const TOKEN = 'switch-benchmark-token-0123456789';

interface Answer {
  instance: 'A' | 'B';
  sentAt: number;
  body: string | undefined;
  error: string | undefined;
}

async function startVersion(name: string): Promise<{ origin: string; close(): void }> {
  const server = http.createServer((_req, res) => res.end(name));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { origin: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, close: () => server.close() };
}

function steadyLoad(instance: 'A' | 'B', port: number, ca: string, answers: Answer[]): { stop(): Promise<void> } {
  const agent = new https.Agent({ keepAlive: true, maxSockets: CLIENTS_PER_INSTANCE, ca, servername: 'localhost' });
  let running = true;
  const one = (): Promise<void> =>
    new Promise((resolve) => {
      const sentAt = performance.now();
      const req = https.get({ host: '127.0.0.1', port, path: '/', headers: { host: 'localhost' }, agent }, (res) => {
        let body = '';
        res.on('data', (c: Buffer) => (body += c.toString()));
        res.on('end', () => {
          const ok = res.statusCode === 200;
          answers.push({ instance, sentAt, body: ok ? body : undefined, error: ok ? undefined : `${res.statusCode}` });
          resolve();
        });
      });
      req.on('error', (err) => {
        answers.push({ instance, sentAt, body: undefined, error: err.message });
        resolve();
      });
    });
  const loops = Array.from({ length: CLIENTS_PER_INSTANCE }, async () => {
    while (running) await one();
  });
  return {
    async stop() {
      running = false;
      await Promise.all(loops);
      agent.destroy();
    },
  };
}

/** Milliseconds from `returnedAt` to the send time of the last request the old version answered (0 if none). */
function convergence(answers: readonly Answer[], instance: 'A' | 'B', oldVersion: string, returnedAt: number, until: number): number {
  let last = returnedAt;
  for (const a of answers) {
    if (a.instance === instance && a.sentAt >= returnedAt && a.sentAt < until && a.body === oldVersion) last = Math.max(last, a.sentAt);
  }
  return Math.round(last - returnedAt);
}

async function main(): Promise<number> {
  const dir = await mkdtemp(join(tmpdir(), 'proximation-switch-bench-'));
  const children = new ChildSupervisor(dir);
  const v1 = await startVersion('v1');
  const v2 = await startVersion('v2');
  try {
    const le = join(dir, 'le');
    const routes = join(le, 'proximation', 'routes.json');
    await mkdir(join(le, 'proximation'), { recursive: true });
    await writeFile(
      routes,
      `${JSON.stringify({
        schemaVersion: 1,
        generation: 1,
        sites: [{ name: 'bench', hosts: ['localhost'], activeVersion: 'v1', history: [], versions: [{ name: 'v1', upstreams: [v1.origin], registeredAt: new Date().toISOString() }] }],
      })}\n`,
    );
    const tokenFile = join(dir, 'token');
    await writeFile(tokenFile, TOKEN, { mode: 0o600 });
    const ports = (await freePorts(6)) as [number, number, number, number, number, number];
    const instances = (['A', 'B'] as const).map((name, i) => ({
      name,
      httpsPort: ports[i * 3 + 1]!,
      adminPort: ports[i * 3 + 2]!,
      env: {
        PATH: process.env.PATH,
        PROXIMATION_HTTP_PORT: String(ports[i * 3]),
        PROXIMATION_HTTPS_PORT: String(ports[i * 3 + 1]),
        PROXIMATION_ADMIN_PORT: String(ports[i * 3 + 2]),
        PROXIMATION_LISTEN_ADDRESS: '127.0.0.1',
        PROXIMATION_LETSENCRYPT_DIR: le,
        PROXIMATION_ACCESS_LOG: 'off',
        PROXIMATION_LOG_LEVEL: 'warn',
        ...ONE_ADDRESS_LIMITS,
        ...(name === 'A' ? { PROXIMATION_ADMIN_TOKEN_FILE: tokenFile } : {}),
      },
    }));
    for (const inst of instances) {
      const service = await children.start({ name: `proximation-${inst.name}`, command: process.execPath, args: [proximationCli, 'serve'], env: inst.env, cwd: dir });
      await pollUntilReady(`instance ${inst.name} /healthz`, 30_000, [service], async () => {
        const { status } = await fetchLocal(inst.adminPort, '/healthz');
        if (status !== 200) throw new Error(`/healthz answered ${status}`);
      });
    }
    const ca = await readFile(join(le, 'proximation', 'local-ca', 'root.pem'), 'utf8');
    for (const inst of instances) {
      await pollUntilReady(`instance ${inst.name} HTTPS`, 30_000, [], async () => {
        const { status } = await fetchLocal(inst.httpsPort, '/', { ca, servername: 'localhost' });
        if (status !== 200) throw new Error(`answered ${status}`);
      });
    }

    const answers: Answer[] = [];
    const loads = instances.map((inst) => steadyLoad(inst.name, inst.httpsPort, ca, answers));
    /** When the command started and when it returned. */
    const deploy = async (args: string[]): Promise<{ startedAt: number; returnedAt: number }> => {
      const startedAt = performance.now();
      await children.run(
        { name: 'deploy', command: process.execPath, args: [deployCli, ...args, '--proxy', `http://127.0.0.1:${instances[0]!.adminPort}`, '--token-file', tokenFile], cwd: dir },
        60_000,
      );
      return { startedAt, returnedAt: performance.now() };
    };
    await new Promise((r) => setTimeout(r, 1_000));
    const switched = await deploy(['register', '--site', 'bench', '--version', 'v2', '--upstream', v2.origin, '--health-timeout', '10s']);
    await new Promise((r) => setTimeout(r, SETTLE_MS));
    const rolledBack = await deploy(['rollback', '--site', 'bench']);
    await new Promise((r) => setTimeout(r, SETTLE_MS));
    await Promise.all(loads.map((l) => l.stop()));

    const rows = [
      { step: 'register v2 (health-gated, through A)', a: convergence(answers, 'A', 'v1', switched.returnedAt, rolledBack.startedAt), b: convergence(answers, 'B', 'v1', switched.returnedAt, rolledBack.startedAt) },
      { step: 'rollback to v1 (through A)', a: convergence(answers, 'A', 'v2', rolledBack.returnedAt, Infinity), b: convergence(answers, 'B', 'v2', rolledBack.returnedAt, Infinity) },
    ];
    const failures = answers.filter((a) => a.error !== undefined);
    const results = { finishedAt: new Date().toISOString(), requests: answers.length, failed: failures.length, failures: failures.slice(0, 10), steps: rows };
    await writeFile(fileURLToPath(new URL('../bench/results/switch.json', import.meta.url)), `${JSON.stringify(results, null, 2)}\n`);
    console.log('| switch (ms from the deploy command returning to 100% of new requests on the new version) | instance A (admin API) | instance B (polls) |');
    console.log('|---|---|---|');
    for (const r of rows) console.log(`| ${r.step} | ${r.a} | ${r.b} |`);
    console.log(`\nRequests during the run: ${answers.length}, failed: ${failures.length}.`);
    const worstB = Math.max(...rows.map((r) => r.b));
    console.log(`Targets: ${worstB <= 2000 ? 'PASS' : 'FAIL'}: second instance <= 2000 ms (worst ${worstB}); ${failures.length === 0 ? 'PASS' : 'FAIL'}: 0 failed requests.`);
    return worstB <= 2000 && failures.length === 0 ? 0 : 1;
  } finally {
    children.killAllSync();
    v1.close();
    v2.close();
    await rm(dir, { recursive: true, force: true });
  }
}

process.exitCode = await main();
