/**
 * The whole-machine rows of `npm run bench` (issue 15): every proxy gets every core, sharing the machine
 * with the load generator (two threads) and the upstream, nothing pinned: proximation with a worker per
 * CPU (its default), the same with one worker (what the workers add), nginx with `worker_processes
 * auto`, Caddy with its defaults (Go uses every core). Measured interleaved in the same rounds as the
 * per-core rows are (rounds.ts): HTTPS keep-alive 100 B, HTTP/2, a new TLS connection per request.
 * Prints the Markdown table and the target check, writes `bench/results/machine.json`; the same
 * BENCH_* settings as run.ts (BENCH_PROXIES among this file's keys). Exit code 1 as run.ts.
 */
import { cpus } from 'node:os';
import { benchMain, progress } from './bench-process.js';
import type { ChildSupervisor } from './children.js';
import { readBenchConfig, type BenchConfig } from './config.js';
import type { ProxyUnderTest } from './proxy.js';
import { caddyProxy } from './proxy-caddy.js';
import { nginxEveryCore } from './proxy-nginx.js';
import { proximationEveryCore, proximationOneWorker } from './proxy-proximation.js';
import { renderTable, renderTargets } from './report-markdown.js';
import { MACHINE_RESULTS, writeResults } from './results-file.js';
import { measureProxies, timeBudgetMs } from './rounds.js';
import { SCENARIOS } from './scenarios.js';
import { checkMachineTargets } from './summary.js';

const PROXIES: readonly ProxyUnderTest[] = [proximationEveryCore, proximationOneWorker, nginxEveryCore, caddyProxy];
const SCENARIO_KEYS = { keepAlive: 'https-keepalive-100b', http2: 'http2-100b', newConnection: 'tls-handshake-per-request' };
const MACHINE_SCENARIOS = SCENARIOS.filter((s) => (Object.values(SCENARIO_KEYS) as string[]).includes(s.key));
const LOAD_THREADS = 2;

async function bench(children: ChildSupervisor, workDir: string, config: BenchConfig): Promise<boolean> {
  const startedAt = new Date();
  const proxies = PROXIES.filter((p) => config.proxies === undefined || config.proxies.includes(p.key));
  progress(
    `proximation bench, whole machine (${cpus().length} CPUs, nothing pinned): ${proxies.map((p) => p.key).join(', ')}; ` +
      `${config.rounds} rounds x ${config.seconds} s per scenario, ${config.connections} connections, ${LOAD_THREADS} load threads; ` +
      `at most ${Math.round(timeBudgetMs(config, proxies, MACHINE_SCENARIOS, 0) / 1000)} s`,
  );
  const { machine, summaries, incomplete } = await measureProxies(
    { children, workDir, config, proxies, progress },
    { proxyCore: undefined, loadCore: undefined, scenarios: MACHINE_SCENARIOS, idleSeconds: 0, loadThreads: LOAD_THREADS },
  );
  const targets = checkMachineTargets(
    summaries,
    { subject: proximationEveryCore.key, oneWorker: proximationOneWorker.key, caddy: caddyProxy.key, references: [nginxEveryCore.key] },
    SCENARIO_KEYS,
  );
  const markdown = renderTable(
    summaries,
    MACHINE_SCENARIOS,
    { subject: proximationEveryCore.key, nginx: nginxEveryCore.key, caddy: caddyProxy.key },
    config.rounds,
    { placement: `every proxy on all ${cpus().length} CPUs, shared with the load`, othersRow: 'CPU used by everything else on the machine (load generator, upstream), %' },
  );
  await writeResults(MACHINE_RESULTS, {
    startedAt: startedAt.toISOString(),
    finishedAt: new Date().toISOString(),
    incomplete,
    settings: {
      ...config,
      proxyCore: null,
      loadCore: null,
      wrk: `wrk -t${LOAD_THREADS} -c${config.connections} --latency`,
      h2load: `h2load -t${LOAD_THREADS} -c${config.connections} -m10`,
    },
    machine,
    proxies: summaries,
    targets,
    markdown,
  });
  process.stdout.write(`\n${markdown}\n\n${renderTargets(targets, proximationEveryCore.label)}\n\nResults: ${MACHINE_RESULTS}\n`);
  return incomplete === null && summaries.every((s) => Object.keys(s.failures).length === 0);
}

benchMain((children, workDir) => bench(children, workDir, readBenchConfig(process.env, PROXIES.map((p) => p.key))));
