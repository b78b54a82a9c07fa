/**
 * The certificate benchmark (`node proximation/dist-bench/certs-bench.js`, part of `npm run bench`):
 * (a) time for one `proximation serve` to obtain certificates for ISSUE_NAMES new names from Pebble over
 *     HTTP-01 (from the routing table write to every lineage stored and served, verified against Pebble's
 *     root), target < 30 s, with proximation's own pacing (MAX_ORDERS_IN_FLIGHT, set by Let's Encrypt's
 *     request limits) and Pebble as the tests run it (validation without random sleeps, 5% of nonces
 *     rejected);
 * (b) DNS01_NAMES names over DNS-01 from Pebble, resolving through a BIND 9 the bench starts, updated over
 *     RFC 2136 with TSIG: the time (routing table write to every certificate served), target < 60 s; the
 *     most orders in flight at once (from proximation's log: order created .. issued), target ≤ 8; and the
 *     DNS updates BIND applied (from its own log), target one present and one cleanup per authorization;
 * (c) start-up time (process spawn to /healthz 200) and RSS with LINEAGES lineages on disk, issued
 *     beforehand by the local CA, with a tenth and with all of them routed, target < 2 s and < 300 MiB
 *     (certificates are loaded by SNI, lazily). A start that fails is a row with its reason, not an abort.
 * Arguments name the phases to run (`issue`, `dns01`, `startup`; default all), for measuring one.
 * Prints a Markdown table and writes results/certs.json (a run of some phases: results/certs-<phases>.json,
 * so it never replaces a full run's file). Every child is killed on exit; the work
 * directory is removed. Throws (exit 1) when a phase cannot run: Pebble or proximation not starting
 * (ERR_BENCH_NOT_READY), a certificate not obtained in time (ERR_BENCH_TIMEOUT).
 */
import { X509Certificate } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, open, readFile, rename, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect } from 'node:tls';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { ProximationError, errorMessage, serializeRoutingTable, type RoutingTable } from '@proximation/shared';
import { MAX_ORDERS_IN_FLIGHT } from '../dist/certs/certificate-manager.js';
import { openLocalIssuer } from '../dist/certs/local-issuer.js';
import { BIND_RUNNING, writeBindConfig } from './bind-config.js';
import { ChildSupervisor, type Service } from './children.js';
import { PEBBLE_HTTP01_PORT, PEBBLE_TLS_ALPN01_PORT, startPebble } from './pebble.js';
import { freePorts } from './ports.js';
import { fetchLocal, pollUntilReady } from './readiness.js';

const ISSUE_NAMES = 100;
const DNS01_NAMES = 50;
const DNS01_TARGET_S = 60;
const DNS01_ZONE = 'dns.bench.test';
const LINEAGES = 10_000;
/** How many of the lineages the routing table routes, per start: a tenth, and all of them. */
const ROUTED = [1_000, 10_000] as const;
const ISSUE_TARGET_S = 30;
const START_TARGET_S = 2;
const RSS_TARGET_MIB = 300;
const ISSUE_TIMEOUT_MS = 180_000;
const READY_TIMEOUT_MS = 30_000;
/** After /healthz answers, the background work over every routed name goes on; RSS is taken after it. */
const SETTLE_MS = 5_000;

const cli = fileURLToPath(new URL('../dist/bin/proximation.js', import.meta.url));
const resultsFile = (phases: readonly string[]): string =>
  fileURLToPath(new URL(`../bench/results/certs${phases.length === 0 ? '' : `-${phases.join('-')}`}.json`, import.meta.url));

interface Row {
  readonly measure: string;
  /** null when the measurement could not be taken; `note` says why. */
  readonly value: number | null;
  readonly unit: string;
  readonly target: string;
  readonly met: boolean;
  readonly note?: string;
}

function routingTable(hosts: readonly string[], generation: number): RoutingTable {
  return {
    schemaVersion: 1,
    generation,
    sites: hosts.map((host, i) => ({ name: `s${i}`, hosts: [host], activeVersion: null, history: [], versions: [] })),
  } as unknown as RoutingTable;
}

async function writeRoutes(file: string, table: RoutingTable): Promise<void> {
  await mkdir(join(file, '..'), { recursive: true });
  await writeFile(`${file}.tmp`, serializeRoutingTable(table));
  await rename(`${file}.tmp`, file);
}

function cleanEnv(): NodeJS.ProcessEnv {
  return Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('PROXIMATION_')));
}

/** `proximation serve` on `le`, resolved at its first /healthz 200, with the time that took. */
async function serve(
  children: ChildSupervisor,
  name: string,
  le: string,
  ports: { http: number; https: number },
  env: NodeJS.ProcessEnv,
): Promise<{ service: Service; adminPort: number; readyMs: number }> {
  const [adminPort] = (await freePorts(1)) as [number];
  const started = performance.now();
  const service = await children.start({
    name,
    command: process.execPath,
    args: [cli, 'serve'],
    env: {
      ...cleanEnv(),
      NODE_ENV: 'production',
      PROXIMATION_HTTP_PORT: String(ports.http),
      PROXIMATION_HTTPS_PORT: String(ports.https),
      PROXIMATION_ADMIN_PORT: String(adminPort),
      PROXIMATION_LISTEN_ADDRESS: '127.0.0.1',
      PROXIMATION_LETSENCRYPT_DIR: le,
      PROXIMATION_LOG_FORMAT: 'json',
      ...env,
    },
  });
  await pollUntilReady(`${name} /healthz`, READY_TIMEOUT_MS, [service], async () => {
    const { status } = await fetchLocal(adminPort, '/healthz');
    if (status !== 200) throw new Error(`/healthz answered ${status}`);
  });
  return { service, adminPort, readyMs: performance.now() - started };
}

/** The serial number of the certificate served for `host`, verified against `ca`. */
function servedSerial(port: number, host: string, ca: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: '127.0.0.1', port, servername: host, ca });
    socket.once('secureConnect', () => {
      resolve(socket.getPeerX509Certificate()!.serialNumber);
      socket.end();
    });
    socket.once('error', reject);
  });
}

/** Until every host has a lineage in `le` and is served a certificate that verifies against `rootPem`. */
async function waitUntilServed(service: Service, le: string, hosts: readonly string[], httpsPort: number, rootPem: string): Promise<void> {
  const deadline = Date.now() + ISSUE_TIMEOUT_MS;
  for (;;) {
    const stored = hosts.filter((host) => existsSync(join(le, 'live', host, 'privkey.pem'))).length;
    if (stored === hosts.length) break;
    if (service.exitStatus() !== undefined) {
      throw new ProximationError('ERR_BENCH_NOT_READY', `proximation exited (${service.exitStatus()}) during issuance:\n${service.logTail()}`);
    }
    if (Date.now() > deadline) {
      throw new ProximationError('ERR_BENCH_TIMEOUT', `only ${stored} of ${hosts.length} certificates after ${ISSUE_TIMEOUT_MS} ms:\n${service.logTail()}`);
    }
    await sleep(20);
  }
  // Stored is not yet served: every name's handshake must verify against Pebble's root.
  for (const host of hosts) await servedSerial(httpsPort, host, rootPem);
}

async function issueBench(children: ChildSupervisor, dir: string): Promise<Row> {
  const pebble = await startPebble(children, dir);
  const le = join(dir, 'issue-le');
  const routes = join(le, 'proximation', 'routes.json');
  await writeRoutes(routes, routingTable([], 1));
  const { service } = await serve(children, 'proximation-issue', le, { http: PEBBLE_HTTP01_PORT, https: PEBBLE_TLS_ALPN01_PORT }, {
    PROXIMATION_ISSUER: 'acme',
    PROXIMATION_ACME_DIRECTORY: pebble.directoryUrl,
    PROXIMATION_ACME_CA_CERTS: pebble.caCertsPath,
    PROXIMATION_LOG_LEVEL: 'warn',
  });
  const hosts = Array.from({ length: ISSUE_NAMES }, (_, i) => `n${i}.bench.test`);
  const started = performance.now();
  await writeRoutes(routes, routingTable(hosts, 2));
  await waitUntilServed(service, le, hosts, PEBBLE_TLS_ALPN01_PORT, pebble.rootPem);
  const seconds = (performance.now() - started) / 1000;
  await children.stop(service);
  await pebble.close();
  return { measure: `issue ${ISSUE_NAMES} certificates from Pebble (HTTP-01)`, value: round(seconds), unit: 's', target: `< ${ISSUE_TARGET_S} s`, met: seconds < ISSUE_TARGET_S };
}

/** A BIND 9 on a free port, authoritative for DNS01_ZONE, ready once it logs that it runs. */
async function startBind(children: ChildSupervisor, dir: string): Promise<{ port: number; credentialsFile: string; service: Service }> {
  const bindDir = join(dir, 'bind');
  await mkdir(bindDir, { recursive: true });
  const [port] = (await freePorts(1)) as [number];
  const { confPath, credentialsFile } = await writeBindConfig(bindDir, port, DNS01_ZONE);
  const service = await children.start({ name: 'named', command: 'named', args: ['-g', '-c', confPath, '-n', '1'] });
  await pollUntilReady('BIND', READY_TIMEOUT_MS, [service], async () => {
    if (!BIND_RUNNING.test(await readFile(service.logPath, 'utf8'))) throw new Error('named is not running yet');
  });
  return { port, credentialsFile, service };
}

/** The most orders open at once, from proximation's JSON log lines in order. */
function maxOrdersInFlight(log: string): number {
  let open = 0;
  let max = 0;
  for (const line of log.split('\n')) {
    if (line.includes('"msg":"ACME order created"')) max = Math.max(max, ++open);
    else if (line.includes('"msg":"ACME certificate issued"') || line.includes('"msg":"could not obtain a certificate; will retry"')) open--;
  }
  return max;
}

async function dns01Bench(children: ChildSupervisor, dir: string): Promise<Row[]> {
  const bind = await startBind(children, dir);
  const pebbleDir = join(dir, 'pebble-dns01');
  await mkdir(pebbleDir, { recursive: true });
  const pebble = await startPebble(children, pebbleDir, `127.0.0.1:${bind.port}`);
  const le = join(dir, 'dns01-le');
  const routes = join(le, 'proximation', 'routes.json');
  await writeRoutes(routes, routingTable([], 1));
  const [http, https] = (await freePorts(2)) as [number, number];
  const { service } = await serve(children, 'proximation-dns01', le, { http, https }, {
    PROXIMATION_ISSUER: 'acme',
    PROXIMATION_ACME_DIRECTORY: pebble.directoryUrl,
    PROXIMATION_ACME_CA_CERTS: pebble.caCertsPath,
    PROXIMATION_ACME_CHALLENGE: 'dns-01',
    PROXIMATION_DNS_PROVIDER: 'rfc2136',
    PROXIMATION_DNS_RFC2136_CREDENTIALS: bind.credentialsFile,
    PROXIMATION_DNS_RESOLVERS: `127.0.0.1:${bind.port}`,
    PROXIMATION_DNS_AUTHORITATIVE_PORT: String(bind.port),
    PROXIMATION_LOG_LEVEL: 'info',
  });
  const hosts = Array.from({ length: DNS01_NAMES }, (_, i) => `d${i}.${DNS01_ZONE}`);
  const started = performance.now();
  await writeRoutes(routes, routingTable(hosts, 2));
  await waitUntilServed(service, le, hosts, https, pebble.rootPem);
  const seconds = (performance.now() - started) / 1000;
  await children.stop(service);
  await pebble.close();
  const inFlight = maxOrdersInFlight(await readFile(service.logPath, 'utf8'));
  const bindLog = await readFile(bind.service.logPath, 'utf8');
  await children.stop(bind.service);
  const presents = bindLog.match(/adding an RR at '_acme-challenge/g)?.length ?? 0;
  const cleanups = bindLog.match(/deleting an RR at _acme-challenge/g)?.length ?? 0;
  return [
    { measure: `issue ${DNS01_NAMES} certificates from Pebble over DNS-01 (RFC 2136 to BIND)`, value: round(seconds), unit: 's', target: `< ${DNS01_TARGET_S} s`, met: seconds < DNS01_TARGET_S },
    { measure: 'DNS-01: most orders in flight at once', value: inFlight, unit: 'orders', target: `≤ ${MAX_ORDERS_IN_FLIGHT}`, met: inFlight <= MAX_ORDERS_IN_FLIGHT },
    {
      measure: `DNS-01: updates BIND applied (${presents} present, ${cleanups} cleanup)`,
      value: presents + cleanups,
      unit: 'updates',
      target: `${2 * DNS01_NAMES} (one present, one cleanup per authorization)`,
      met: presents === DNS01_NAMES && cleanups === DNS01_NAMES,
    },
  ];
}

/**
 * One lineage per host in certbot's layout (archive N=1, relative live links, private key 0600), each with its
 * own local-CA certificate. Plain writes: this is set-up, not the store under test.
 */
async function makeLineages(le: string, hosts: readonly string[]): Promise<void> {
  const issuer = await openLocalIssuer(le);
  const first = await issuer.ca.issue([hosts[0]!]);
  const BATCH = 200;
  for (let i = 0; i < hosts.length; i += BATCH) {
    await Promise.all(hosts.slice(i, i + BATCH).map(async (host, j) => {
      const files = i + j === 0 ? first : await issuer.ca.issue([host]);
      const archive = join(le, 'archive', host);
      const live = join(le, 'live', host);
      await mkdir(archive, { recursive: true, mode: 0o700 });
      await mkdir(live, { recursive: true, mode: 0o755 });
      const contents = { cert: files.certPem, chain: files.chainPem, fullchain: files.certPem + files.chainPem, privkey: files.keyPem };
      for (const [kind, pem] of Object.entries(contents)) {
        await writeFile(join(archive, `${kind}1.pem`), pem, { mode: kind === 'privkey' ? 0o600 : 0o644 });
        await symlink(`../../archive/${host}/${kind}1.pem`, join(live, `${kind}.pem`));
      }
    }));
  }
}

/** VmRSS and VmHWM (peak) of a process, in MiB. */
async function rss(pid: number): Promise<{ now: number; peak: number }> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8');
  const kib = (field: string): number => Number(new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? NaN);
  return { now: kib('VmRSS') / 1024, peak: kib('VmHWM') / 1024 };
}

/** One start on `le` with the first `routed` hosts in the routing table; failures become rows, not exceptions. */
async function startOnce(children: ChildSupervisor, le: string, hosts: readonly string[], routed: number): Promise<Row[]> {
  const label = `${LINEAGES} lineages on disk, ${routed} routed`;
  await writeRoutes(join(le, 'proximation', 'routes.json'), routingTable(hosts.slice(0, routed), 1));
  const [http, https] = (await freePorts(2)) as [number, number];
  let started: Awaited<ReturnType<typeof serve>>;
  try {
    started = await serve(children, `proximation-startup-${routed}`, le, { http, https }, { PROXIMATION_ISSUER: 'local', PROXIMATION_LOG_LEVEL: 'info' });
  } catch (err) {
    const why = errorMessage(err).split('\n').filter((l) => !l.startsWith('{')).join(' ').slice(0, 300);
    return [{ measure: `start-up to /healthz 200, ${label}`, value: null, unit: 's', target: `< ${START_TARGET_S} s`, met: false, note: why }];
  }
  const { service, readyMs } = started;
  const atReady = await rss(service.pid);
  const root = await readFile(join(le, 'proximation', 'local-ca', 'root.pem'), 'utf8');
  // The last routed name is served the certificate on disk, not a new one.
  const probe = hosts[routed - 1]!;
  const onDisk = new X509Certificate(await readFile(join(le, 'live', probe, 'cert.pem'))).serialNumber;
  if ((await servedSerial(https, probe, root)) !== onDisk) throw new ProximationError('ERR_BENCH_NOT_READY', `${probe} was not served its lineage on disk`);
  await sleep(SETTLE_MS);
  const settled = await rss(service.pid);
  const issued = (await readFile(service.logPath, 'utf8')).split('\n').filter((l) => l.includes('"msg":"issuing certificate"')).length;
  await children.stop(service);
  if (issued > 0) throw new ProximationError('ERR_BENCH_NOT_READY', `proximation issued ${issued} certificates although every lineage was valid`);
  const readyS = readyMs / 1000;
  return [
    { measure: `start-up to /healthz 200, ${label}`, value: round(readyS), unit: 's', target: `< ${START_TARGET_S} s`, met: readyS < START_TARGET_S },
    { measure: `RSS at /healthz 200, ${label}`, value: round(atReady.now), unit: 'MiB', target: `< ${RSS_TARGET_MIB} MiB`, met: atReady.now < RSS_TARGET_MIB },
    { measure: `peak RSS ${SETTLE_MS / 1000} s later, ${label}`, value: round(settled.peak), unit: 'MiB', target: `< ${RSS_TARGET_MIB} MiB`, met: settled.peak < RSS_TARGET_MIB },
  ];
}

async function startupBench(children: ChildSupervisor, dir: string): Promise<Row[]> {
  const le = join(dir, 'startup-le');
  const hosts = Array.from({ length: LINEAGES }, (_, i) => `l${i}.bench.test`);
  const generating = performance.now();
  await makeLineages(le, hosts);
  console.log(`(generated ${LINEAGES} lineages in ${round((performance.now() - generating) / 1000)} s)`);
  const rows: Row[] = [];
  for (const routed of ROUTED) rows.push(...(await startOnce(children, le, hosts, routed)));
  return rows;
}

function round(n: number): number {
  return Math.round(n * 100) / 100;
}

function markdown(rows: readonly Row[]): string {
  return [
    '| measure | value | target | met |',
    '|---|---:|---|---|',
    ...rows.map((r) => `| ${r.measure} | ${r.value === null ? `failed: ${r.note ?? ''}` : `${r.value} ${r.unit}`} | ${r.target} | ${r.met ? 'yes' : 'NO'} |`),
  ].join('\n');
}

async function main(): Promise<void> {
  if (!existsSync(cli)) throw new ProximationError('ERR_BENCH_COMMAND', `${cli} does not exist; build first (npx tsc -b).`);
  const dir = await mkdtemp(join(tmpdir(), 'proximation-certs-bench-'));
  const children = new ChildSupervisor(dir);
  const killAll = (): void => children.killAllSync();
  process.once('exit', killAll);
  for (const signal of ['SIGINT', 'SIGTERM'] as const) process.once(signal, () => process.exit(130));
  const startedAt = new Date().toISOString();
  try {
    const phases = { issue: async () => [await issueBench(children, dir)], dns01: () => dns01Bench(children, dir), startup: () => startupBench(children, dir) };
    const chosen = process.argv.slice(2);
    const unknown = chosen.filter((name) => !(name in phases));
    if (unknown.length > 0) throw new ProximationError('ERR_BENCH_COMMAND', `unknown phase ${unknown.join(', ')}: choose from ${Object.keys(phases).join(', ')}.`);
    const rows: Row[] = [];
    for (const [name, run] of Object.entries(phases)) if (chosen.length === 0 || chosen.includes(name)) rows.push(...(await run()));
    const table = markdown(rows);
    console.log(table);
    const results = { startedAt, finishedAt: new Date().toISOString(), issueNames: ISSUE_NAMES, dns01Names: DNS01_NAMES, lineages: LINEAGES, rows, markdown: table };
    const resultsPath = resultsFile(chosen);
    const temp = await open(`${resultsPath}.tmp`, 'w');
    try {
      await temp.writeFile(`${JSON.stringify(results, null, 2)}\n`);
      await temp.sync();
    } finally {
      await temp.close();
    }
    await rename(`${resultsPath}.tmp`, resultsPath);
    console.log(`results written to ${resultsPath}`);
  } finally {
    killAll();
    await rm(dir, { recursive: true, force: true });
  }
}

main().catch((err: unknown) => {
  console.error(errorMessage(err));
  process.exitCode = 1;
});
