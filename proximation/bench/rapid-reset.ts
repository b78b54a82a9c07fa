/**
 * The rapid-reset benchmark (CVE-2023-44487): a legitimate HTTP/2 client keeps sending requests through
 * proximation (from 127.0.0.1) while an attacker process (rapid-reset-attacker.ts, from 127.0.0.2, its
 * own address as on the internet) opens 8 sessions that open and reset streams as fast as they can.
 * Measured: the legitimate client's latency (p50, p99, max, failures) before and during the attack, and
 * proximation's RSS idle and at most during the attack; the streams the attacker sent, the sessions it
 * needed, and what proximation's limits did (proximation_limit_hits_total). Targets: p99 during the
 * attack < 100 ms, peak RSS < 2 × idle. The proxy is pinned to core 0, the attacker to core 1. Writes
 * results/rapid-reset.json and prints a Markdown table; exit code 1 when a target is missed.
 */
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import http from 'node:http';
import http2 from 'node:http2';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import net from 'node:net';
import tls from 'node:tls';
import { fileURLToPath } from 'node:url';
import { ChildSupervisor } from './children.js';
import { imageNodeFlags } from './image-launch.js';
import { freePorts } from './ports.js';
import { routesFile, serveEnv } from './proxy-proximation.js';
import { rssMiB } from './proc-usage.js';
import { fetchLocal, pollUntilReady } from './readiness.js';

const proximationCli = fileURLToPath(new URL('../dist/bin/proximation.js', import.meta.url));
const attackerScript = fileURLToPath(new URL('./rapid-reset-attacker.js', import.meta.url));
const BASELINE_S = 5;
const ATTACK_S = 10;
const ATTACK_CONNECTIONS = 8;
/** A browser-like pace: one request, then a short pause. */
const CLIENT_PAUSE_MS = 10;
const TARGET_P99_MS = 100;
const TARGET_RSS_FACTOR = 2;

interface Phase {
  latencies: number[];
  failures: number;
  peakRssMiB: number;
}

function percentile(sorted: readonly number[], p: number): number {
  return sorted.length === 0 ? NaN : sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

/** Sequential requests on one session for `seconds`, sampling the proxy's RSS meanwhile. */
async function legitimateClient(port: number, ca: string, seconds: number, proxyPid: number): Promise<Phase> {
  const phase: Phase = { latencies: [], failures: 0, peakRssMiB: 0 };
  const sampler = setInterval(() => (phase.peakRssMiB = Math.max(phase.peakRssMiB, rssMiB(proxyPid))), 100);
  let session: http2.ClientHttp2Session | undefined;
  const deadline = performance.now() + seconds * 1000;
  try {
    while (performance.now() < deadline) {
      if (session === undefined || session.closed || session.destroyed) {
        session = http2.connect(`https://127.0.0.1:${port}`, {
          createConnection: () => tls.connect({ socket: net.connect({ host: '127.0.0.1', port, localAddress: '127.0.0.1' }), servername: 'localhost', ALPNProtocols: ['h2'], ca }),
        });
        session.on('error', () => {});
      }
      const s = session;
      const started = performance.now();
      const ok = await new Promise<boolean>((resolve) => {
        const timer = setTimeout(() => resolve(false), 5_000);
        let stream: http2.ClientHttp2Stream;
        try {
          stream = s.request({ ':path': '/', ':authority': 'localhost' });
        } catch {
          clearTimeout(timer);
          resolve(false);
          return;
        }
        let status = 0;
        stream.on('response', (h) => (status = Number(h[':status'])));
        stream.on('data', () => {});
        stream.on('end', () => {
          clearTimeout(timer);
          resolve(status === 200);
        });
        stream.on('error', () => {
          clearTimeout(timer);
          resolve(false);
        });
      });
      if (ok) phase.latencies.push(performance.now() - started);
      else phase.failures++;
      await new Promise((r) => setTimeout(r, CLIENT_PAUSE_MS));
    }
  } finally {
    clearInterval(sampler);
    session?.destroy();
  }
  phase.latencies.sort((a, b) => a - b);
  return phase;
}

async function limitHits(adminPort: number): Promise<Record<string, number>> {
  const text = await new Promise<string>((resolve, reject) => {
    http.get({ host: '127.0.0.1', port: adminPort, path: '/metrics', agent: false }, (res) => {
      let body = '';
      res.on('data', (c: Buffer) => (body += c.toString()));
      res.on('end', () => resolve(body));
    }).on('error', reject);
  });
  const hits: Record<string, number> = {};
  for (const [, limit, value] of text.matchAll(/^proximation_limit_hits_total\{limit="([a-z_]+)"\} (\S+)$/gm)) hits[limit!] = Number(value);
  return hits;
}

function row(name: string, phase: Phase): string {
  const { latencies: l } = phase;
  const ms = (v: number) => v.toFixed(1);
  return `| ${name} | ${l.length} | ${phase.failures} | ${ms(percentile(l, 50))} | ${ms(percentile(l, 99))} | ${ms(l[l.length - 1] ?? NaN)} | ${phase.peakRssMiB.toFixed(0)} |`;
}

async function main(): Promise<number> {
  const dir = await mkdtemp(join(tmpdir(), 'proximation-rapid-reset-bench-'));
  const children = new ChildSupervisor(dir);
  const upstream = http.createServer((_req, res) => res.end('ok'));
  await new Promise<void>((resolve) => upstream.listen(0, '127.0.0.1', resolve));
  try {
    const le = join(dir, 'le');
    const routes = join(le, 'proximation', 'routes.json');
    await mkdir(join(le, 'proximation'), { recursive: true });
    const origin = `http://127.0.0.1:${(upstream.address() as AddressInfo).port}`;
    await writeFile(routes, routesFile(origin));
    const [httpPort, httpsPort, adminPort] = (await freePorts(3)) as [number, number, number];
    const proxy = await children.start({
      name: 'proximation',
      command: process.execPath,
      args: [...imageNodeFlags(), proximationCli, 'serve'],
      core: 0,
      cwd: dir,
      env: { ...serveEnv({ httpPort, httpsPort, adminPort }, le, false), PROXIMATION_LOG_LEVEL: 'warn' },
    });
    await pollUntilReady('proximation /healthz', 30_000, [proxy], async () => {
      const { status } = await fetchLocal(adminPort, '/healthz');
      if (status !== 200) throw new Error(`/healthz answered ${status}`);
    });
    const ca = await readFile(join(le, 'proximation', 'local-ca', 'root.pem'), 'utf8');
    await pollUntilReady('proximation HTTPS', 30_000, [proxy], async () => {
      const { status } = await fetchLocal(httpsPort, '/', { ca, servername: 'localhost' });
      if (status !== 200) throw new Error(`answered ${status}`);
    });

    process.stderr.write(`rapid-reset bench: baseline ${BASELINE_S} s, then ${ATTACK_S} s under attack (${ATTACK_CONNECTIONS} sessions)\n`);
    await legitimateClient(httpsPort, ca, 1, proxy.pid);
    const idleRssMiB = rssMiB(proxy.pid);
    const baseline = await legitimateClient(httpsPort, ca, BASELINE_S, proxy.pid);
    const attacker = children.run(
      { name: 'rapid-reset-attacker', command: process.execPath, args: [attackerScript, String(httpsPort), String(ATTACK_S), String(ATTACK_CONNECTIONS), '127.0.0.2'], core: 1, cwd: dir },
      (ATTACK_S + 30) * 1000,
    );
    const attacked = await legitimateClient(httpsPort, ca, ATTACK_S, proxy.pid);
    const attack = JSON.parse((await attacker).stdout) as { streams: number; sessions: number };
    const hits = await limitHits(adminPort);

    const p99 = percentile(attacked.latencies, 99);
    const rssOk = attacked.peakRssMiB < TARGET_RSS_FACTOR * idleRssMiB;
    const p99Ok = p99 < TARGET_P99_MS && attacked.failures === 0;
    const results = { finishedAt: new Date().toISOString(), idleRssMiB, baseline: { ...baseline, latencies: undefined, p50: percentile(baseline.latencies, 50), p99: percentile(baseline.latencies, 99), requests: baseline.latencies.length }, attacked: { ...attacked, latencies: undefined, p50: percentile(attacked.latencies, 50), p99, requests: attacked.latencies.length }, attack, limitHits: hits };
    await writeFile(fileURLToPath(new URL('../bench/results/rapid-reset.json', import.meta.url)), `${JSON.stringify(results, null, 2)}\n`);
    console.log('| legitimate HTTP/2 client | requests | failed | p50 ms | p99 ms | max ms | proxy peak RSS MiB |');
    console.log('|---|---|---|---|---|---|---|');
    console.log(row('before the attack', baseline));
    console.log(row(`during rapid reset (${ATTACK_CONNECTIONS} sessions)`, attacked));
    console.log(
      `\nIdle RSS ${idleRssMiB.toFixed(0)} MiB. Attacker: ${attack.streams} streams reset over ${attack.sessions} sessions; ` +
        `limit hits: ${Object.entries(hits).filter(([, v]) => v > 0).map(([k, v]) => `${k} ${v}`).join(', ') || 'none'}.`,
    );
    console.log(
      `Targets: ${p99Ok ? 'PASS' : 'FAIL'}: p99 under attack < ${TARGET_P99_MS} ms with no failures (${p99.toFixed(1)} ms, ${attacked.failures} failed); ` +
        `${rssOk ? 'PASS' : 'FAIL'}: peak RSS < ${TARGET_RSS_FACTOR} x idle (${attacked.peakRssMiB.toFixed(0)} of ${(TARGET_RSS_FACTOR * idleRssMiB).toFixed(0)} MiB).`,
    );
    return p99Ok && rssOk ? 0 : 1;
  } finally {
    children.killAllSync();
    upstream.close();
    await rm(dir, { recursive: true, force: true });
  }
}

process.exitCode = await main();
