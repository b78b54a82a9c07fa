/**
 * `npm run bench:soak` (not in CI): proximation with a worker per CPU under mixed load for SOAK_MINUTES
 * (default 30): HTTPS keep-alive with 100-byte and 64 KiB answers (two wrk runs), HTTP/2 (h2load) and
 * WebSockets (clients in this process echoing messages of 100 B to 16 KiB through proximation to an echo
 * upstream here), with one routing-table change a minute (each site's active version switched). The
 * proxy's resident memory (primary and workers) is read every 10 s.
 *
 * Passes when RSS after the first 5 minutes grows by less than 5% to the end (for runs under 10 minutes
 * the first half stands in for the 5 minutes) and nothing failed: no socket error, non-2xx answer or
 * h2load failure, no WebSocket error or close other than the 1001 a version switch sends (those clients
 * reconnect). Prints a per-minute Markdown table and the verdict, writes `bench/results/soak.json`, and
 * exits 1 when it does not pass. Every process it started is killed at the end (bench-process.ts).
 */
import { writeFile } from 'node:fs/promises';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import type tls from 'node:tls';
import { fileURLToPath } from 'node:url';
import { ProximationError, activateVersion, addSite, registerVersion, updateRoutingTableFile } from '@proximation/shared';
import WebSocket, { WebSocketServer } from 'ws';
import { benchMain, progress } from './bench-process.js';
import type { ChildSupervisor } from './children.js';
import { runH2load, runWrk, type LoadResult } from './load-generators.js';
import { freePorts } from './ports.js';
import { rssMiB } from './proc-usage.js';
import { proximationEveryCore } from './proxy-proximation.js';
import { makeLocalhostCertificate } from './tls-material.js';
import { startUpstream } from './upstream.js';
import { LARGE_PATH, SMALL_PATH } from './upstream-paths.js';

const SOAK_RESULTS = fileURLToPath(new URL('../bench/results/soak.json', import.meta.url));
const RSS_SAMPLE_MS = 10_000;
const MINUTE_MS = 60_000;
/** Each minute's load runs this long, leaving time for the tools to start and stop inside the minute. */
const LOAD_SECONDS = 55;
const WEBSOCKET_CLIENTS = 20;
const WS_HOST = 'ws.localhost';
const MAX_GROWTH = 0.05;

function soakMinutes(env: NodeJS.ProcessEnv): number {
  const raw = env['SOAK_MINUTES'] ?? '30';
  const minutes = Number(raw);
  if (!Number.isInteger(minutes) || minutes < 2 || minutes > 240) {
    throw new ProximationError('ERR_BENCH_CONFIG', `SOAK_MINUTES=${JSON.stringify(raw)} is not a whole number of minutes from 2 to 240; unset it for 30.`);
  }
  return minutes;
}

interface WebSocketLoad {
  messages: number;
  reconnects: number;
  errors: string[];
  stop(): Promise<void>;
}

/** Clients that each send a message, wait for its echo, and send the next; reconnect after a 1001. */
function webSocketLoad(port: number, ca: string): WebSocketLoad {
  const load: WebSocketLoad = { messages: 0, reconnects: 0, errors: [], stop: async () => {} };
  let running = true;
  const open = new Set<WebSocket>();
  const client = (n: number): void => {
    const options: WebSocket.ClientOptions & tls.ConnectionOptions = { ca, servername: WS_HOST, headers: { host: WS_HOST } };
    const ws = new WebSocket(`wss://127.0.0.1:${port}/`, options);
    open.add(ws);
    const size = 100 * 2 ** (n % 8);
    const send = (): void => ws.send(Buffer.alloc(Math.min(size, 16 * 1024), n));
    ws.on('open', send);
    ws.on('message', () => {
      load.messages++;
      if (running) send();
    });
    // After stop, a client still connecting (back from a 1001 just before) errors because stop closed it.
    ws.on('error', (err) => running && load.errors.push(`websocket ${n}: ${err.message}`));
    ws.on('close', (code) => {
      open.delete(ws);
      if (!running) return;
      if (code === 1001) load.reconnects++;
      else load.errors.push(`websocket ${n} closed with ${code}`);
      client(n);
    });
  };
  for (let n = 0; n < WEBSOCKET_CLIENTS; n++) client(n);
  load.stop = async () => {
    running = false;
    await Promise.all([...open].map((ws) => new Promise<void>((resolve) => {
      ws.once('close', () => resolve());
      ws.close(1000);
    })));
  };
  return load;
}

async function echoUpstream(): Promise<{ origin: string; close(): Promise<void> }> {
  const server = http.createServer((_req, res) => res.end('ws echo'));
  const wss = new WebSocketServer({ server });
  wss.on('connection', (ws) => ws.on('message', (data, binary) => ws.send(data, { binary })));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    origin: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    close: () => new Promise((resolve) => {
      for (const ws of wss.clients) ws.terminate();
      server.close(() => resolve());
    }),
  };
}

interface Minute {
  minute: number;
  keepAlive100B: LoadResult;
  keepAlive64KiB: LoadResult;
  http2: LoadResult;
  webSocketMessages: number;
  rssMiB: number;
}

async function soak(children: ChildSupervisor, workDir: string, minutes: number): Promise<boolean> {
  const warmMinutes = minutes >= 10 ? 5 : Math.floor(minutes / 2);
  progress(`proximation soak: ${minutes} minutes of h1 keep-alive (100 B, 64 KiB), HTTP/2 and ${WEBSOCKET_CLIENTS} WebSockets, a routing change a minute; RSS growth after minute ${warmMinutes} must stay under ${MAX_GROWTH * 100}%`);
  const tls = await makeLocalhostCertificate(children, join(workDir, 'tls'));
  const [upstreamPort] = (await freePorts(1)) as [number];
  const upstream = await startUpstream(children, join(workDir, 'upstream'), upstreamPort, undefined);
  const echo = await echoUpstream();
  const dir = join(workDir, 'proximation');
  const proxy = await proximationEveryCore.start({ children, dir, core: undefined, upstream, tls });
  const routes = join(dir, 'le', 'proximation', 'routes.json');
  const now = (): Date => new Date();
  await updateRoutingTableFile(routes, (table) => {
    const withWs = registerVersion(addSite(table, { name: 'ws', hosts: [WS_HOST] }), { site: 'ws', version: 'ws-1', upstreams: [echo.origin], registeredAt: now(), activate: true });
    const both = registerVersion(withWs, { site: 'ws', version: 'ws-2', upstreams: [echo.origin], registeredAt: now(), activate: false });
    return registerVersion(both, { site: 'bench', version: 'bench-2', upstreams: [upstream.origin], registeredAt: now(), activate: false });
  });

  const rss: { atMs: number; mib: number }[] = [];
  const started = Date.now();
  const sampler = setInterval(() => rss.push({ atMs: Date.now() - started, mib: rssMiB(proxy.service.pid) }), RSS_SAMPLE_MS);
  // The first WebSocket handshake makes proximation issue ws.localhost's certificate: wait for the table.
  await new Promise((resolve) => setTimeout(resolve, 3000));
  const ws = webSocketLoad(proxy.httpsPort, proxy.caPem);
  const table: Minute[] = [];
  const errors: string[] = [];
  try {
    for (let minute = 1; minute <= minutes; minute++) {
      const odd = minute % 2 === 1;
      await updateRoutingTableFile(routes, (t) => activateVersion(activateVersion(t, 'bench', odd ? 'bench-2' : 'bench-1'), 'ws', odd ? 'ws-2' : 'ws-1'));
      const messagesBefore = ws.messages;
      const minuteStarted = Date.now();
      const run = { port: proxy.httpsPort, seconds: LOAD_SECONDS };
      const [keepAlive100B, keepAlive64KiB, http2] = await Promise.all([
        runWrk(children, undefined, { ...run, path: SMALL_PATH, connections: 20 }),
        runWrk(children, undefined, { ...run, path: LARGE_PATH, connections: 10 }),
        runH2load(children, undefined, { ...run, path: SMALL_PATH, connections: 10 }, workDir),
      ]);
      const row: Minute = { minute, keepAlive100B, keepAlive64KiB, http2, webSocketMessages: ws.messages - messagesBefore, rssMiB: rssMiB(proxy.service.pid) };
      table.push(row);
      for (const [name, result] of [['keep-alive 100 B', keepAlive100B], ['keep-alive 64 KiB', keepAlive64KiB], ['HTTP/2', http2]] as const) {
        if (result.errors > 0) errors.push(`minute ${minute}, ${name}: ${result.errors} errors`);
      }
      progress(
        `minute ${minute}/${minutes}: ${Math.round(keepAlive100B.reqPerSec)} + ${Math.round(keepAlive64KiB.reqPerSec)} + ${Math.round(http2.reqPerSec)} req/s, ` +
          `${row.webSocketMessages} WebSocket messages, RSS ${row.rssMiB.toFixed(0)} MiB, errors ${errors.length + ws.errors.length}`,
      );
      const rest = minuteStarted + MINUTE_MS - Date.now();
      if (rest > 0) await new Promise((resolve) => setTimeout(resolve, rest));
    }
  } finally {
    clearInterval(sampler);
    await ws.stop();
    await children.stop(proxy.service);
    await children.stop(upstream.service);
    await echo.close();
  }
  errors.push(...ws.errors);

  const atWarm = rss.find((s) => s.atMs >= warmMinutes * MINUTE_MS) ?? rss[0];
  const last = rss.at(-1);
  const growth = atWarm === undefined || last === undefined ? Number.NaN : (last.mib - atWarm.mib) / atWarm.mib;
  const pass = errors.length === 0 && growth < MAX_GROWTH;
  const markdown = [
    '| minute | keep-alive 100 B, req/s | keep-alive 64 KiB, req/s | HTTP/2, req/s | WebSocket messages | RSS, MiB |',
    '|---:|---:|---:|---:|---:|---:|',
    ...table.map((m) => `| ${m.minute} | ${Math.round(m.keepAlive100B.reqPerSec)} | ${Math.round(m.keepAlive64KiB.reqPerSec)} | ${Math.round(m.http2.reqPerSec)} | ${m.webSocketMessages} | ${m.rssMiB.toFixed(0)} |`),
  ].join('\n');
  const verdict =
    `${pass ? 'PASS' : 'FAIL'}: RSS ${atWarm?.mib.toFixed(0)} MiB after minute ${warmMinutes}, ${last?.mib.toFixed(0)} MiB at the end ` +
    `(${(growth * 100).toFixed(1)}%, limit ${MAX_GROWTH * 100}%); ${errors.length} errors; ${ws.reconnects} WebSocket reconnections after 1001`;
  await writeFile(SOAK_RESULTS, `${JSON.stringify({ minutes, warmMinutes, rss, table, errors, growth, pass, markdown, verdict }, null, 2)}\n`);
  process.stdout.write(`\n${markdown}\n\n${verdict}\n${errors.slice(0, 20).map((e) => `- ${e}`).join('\n')}\nResults: ${SOAK_RESULTS}\n`);
  return pass;
}

benchMain((children, workDir) => soak(children, workDir, soakMinutes(process.env)));
