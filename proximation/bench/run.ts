/**
 * `npm run bench`: measures proximation against nginx, Caddy and an http-proxy reference as HTTPS reverse
 * proxies in front of one nginx upstream, all on 127.0.0.1, and against Node references that show
 * what Node itself costs (its HTTPS server answering alone, a minimal undici proxy, a minimal proxy on
 * plain sockets, and the same on bare TLS sockets without Node's HTTP server). The proxy under test runs alone on core 0;
 * the load generators, the upstream and this process run on core 1 (see rounds.ts for the schedule).
 * Prints progress to stderr, then a Markdown table and the target check to stdout, and writes
 * `bench/results/latest.json`.
 * Guarantees: bounded in count and time (every run has a timeout, the schedule a time budget); every
 * process it started is killed on success, error, SIGINT and SIGTERM; its temporary directory is removed.
 * Exit code 1 when the run failed, a proxy or scenario failed, or the time budget ran out.
 */
import { benchMain, progress } from './bench-process.js';
import type { ChildSupervisor } from './children.js';
import { readBenchConfig, type BenchConfig } from './config.js';
import type { ProxyUnderTest } from './proxy.js';
import { caddyProxy } from './proxy-caddy.js';
import { httpProxyReference } from './proxy-http-proxy.js';
import { nginxProxy } from './proxy-nginx.js';
import { nodeAnswering, nodeMinimalProxy, nodeRawProxy, nodeSocketsProxy } from './proxy-node-reference.js';
import { proximationProxy, proximationWithAccessLog } from './proxy-proximation.js';
import { renderTable, renderTargets } from './report-markdown.js';
import { LATEST_RESULTS, writeResults } from './results-file.js';
import { measureProxies, timeBudgetMs } from './rounds.js';
import { SCENARIOS } from './scenarios.js';
import { checkTargets } from './summary.js';

const PROXIES: readonly ProxyUnderTest[] = [
  proximationProxy,
  proximationWithAccessLog,
  nginxProxy,
  caddyProxy,
  httpProxyReference,
  nodeMinimalProxy,
  nodeSocketsProxy,
  nodeRawProxy,
  nodeAnswering,
];
const PROXY_CORE = 0;
const LOAD_CORE = 1;
const KEYS = { subject: proximationProxy.key, nginx: nginxProxy.key, caddy: caddyProxy.key, floors: [nodeSocketsProxy.key, nodeRawProxy.key, nodeAnswering.key] };
const SCENARIO_KEYS = { keepAlive: 'https-keepalive-100b', http2: 'http2-100b' };

/** Runs the benchmark; resolves true when everything was measured. */
async function bench(children: ChildSupervisor, workDir: string, config: BenchConfig): Promise<boolean> {
  const startedAt = new Date();
  const proxies = PROXIES.filter((p) => config.proxies === undefined || config.proxies.includes(p.key));
  progress(
    `proximation bench: ${proxies.map((p) => p.key).join(', ')}; ${config.rounds} rounds x ${config.seconds} s ` +
      `(+${config.warmupSeconds} s warm-up) per scenario, ${config.connections} connections; at most ` +
      `${Math.round(timeBudgetMs(config, proxies) / 1000)} s; work dir ${workDir}`,
  );
  // Keeps this process, and what it starts unpinned, off the proxy's core.
  await children.run(
    { name: 'taskset', command: 'taskset', args: ['-a', '-p', '-c', String(LOAD_CORE), String(process.pid)] },
    10_000,
  );
  const { machine, summaries, incomplete } = await measureProxies(
    { children, workDir, config, proxies, progress },
    { proxyCore: PROXY_CORE, loadCore: LOAD_CORE },
  );
  const targets = checkTargets(summaries, KEYS, SCENARIO_KEYS);
  const markdown = renderTable(summaries, SCENARIOS, KEYS, config.rounds);
  await writeResults(LATEST_RESULTS, {
    startedAt: startedAt.toISOString(),
    finishedAt: new Date().toISOString(),
    incomplete,
    settings: {
      ...config,
      proxyCore: PROXY_CORE,
      loadCore: LOAD_CORE,
      wrk: `wrk -t1 -c${config.connections} --latency`,
      h2load: `h2load -t1 -c${config.connections} -m10`,
    },
    machine,
    proxies: summaries,
    targets,
    markdown,
  });
  process.stdout.write(
    `\n${markdown}\n\n${renderTargets(targets, proximationProxy.label)}\n\nResults: ${LATEST_RESULTS}\n`,
  );
  return incomplete === null && summaries.every((s) => Object.keys(s.failures).length === 0);
}

benchMain((children, workDir) => bench(children, workDir, readBenchConfig(process.env, PROXIES.map((p) => p.key))));
