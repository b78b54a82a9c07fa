/**
 * Real parts for the proxy tests: temp state directories, upstream HTTP servers on loopback, a
 * proximation server started in-process on ephemeral ports, and HTTPS/HTTP/2 clients that trust its
 * local CA. `managed()` closes what a test started, newest first, after each test.
 */
import fs from 'node:fs/promises';
import http from 'node:http';
import http2 from 'node:http2';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { PassThrough } from 'node:stream';
import { afterEach } from 'vitest';
import { serializeRoutingTable, type RoutingTable } from '@proximation/shared';
import { localCaDir } from '../../src/certs/local-issuer.js';
import { loadConfig, type Config } from '../../src/config.js';
import { createLogger } from '../../src/logger.js';
import { startServer, type RunningServer } from '../../src/server.js';
import { startH2Upstream } from './h2-upstream.js';
import { startRawUpstream, type RawUpstream } from './raw-http.js';

export async function tempDir(prefix = 'proximation-test-'): Promise<{ path: string; close(): Promise<void> }> {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), prefix));
  return { path: dir, close: () => fs.rm(dir, { recursive: true, force: true }) };
}

export interface Upstream {
  origin: string;
  port: number;
  server: http.Server;
  close(): Promise<void>;
}

export async function startUpstream(handler: http.RequestListener): Promise<Upstream> {
  const server = http.createServer(handler);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    origin: `http://127.0.0.1:${port}`,
    port,
    server,
    close: () =>
      new Promise((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

/** An upstream over HTTP/1.1 (`http://`) or HTTP/2 in clear (`h2c://`), so a test can run on both kinds of pool. */
export type UpstreamProtocol = 'http' | 'h2c';

/** An upstream of `protocol` that answers each request with `answer(path)`: its status and body. */
export async function startAnsweringUpstream(protocol: UpstreamProtocol, answer: (path: string) => [number, string]): Promise<{ origin: string; close(): Promise<void> }> {
  if (protocol === 'http') {
    return startUpstream((req, res) => {
      const [status, body] = answer(req.url ?? '/');
      res.writeHead(status).end(body);
    });
  }
  // Each answer waits whole in the session's memory while the proxy holds it back: Node would refuse new streams past 10 MB.
  return startH2Upstream(
    (stream, headers) => {
      const [status, body] = answer(String(headers[':path']));
      stream.respond({ ':status': status });
      stream.end(body);
    },
    { maxSessionMemory: 1024 },
  );
}

/** An upstream that answers with what it received, as JSON. */
export function echoHandler(): http.RequestListener {
  return (req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = JSON.stringify({ method: req.method, url: req.url, headers: req.headers, body: Buffer.concat(chunks).toString() });
      res.writeHead(200, { 'content-type': 'application/json', 'x-upstream': 'echo' });
      res.end(body);
    });
  };
}

export function table(sites: { name: string; hosts: string[]; upstreams?: string[]; version?: string }[], generation = 1): RoutingTable {
  return {
    schemaVersion: 1,
    generation,
    sites: sites.map((s) => ({
      name: s.name,
      hosts: s.hosts,
      activeVersion: s.upstreams ? (s.version ?? 'v1') : null,
      history: [],
      versions: s.upstreams ? [{ name: s.version ?? 'v1', upstreams: s.upstreams, registeredAt: '2026-11-25T00:00:00.000Z' }] : [],
    })),
  } as RoutingTable;
}

/** Writes `routes` atomically; a string is written as it is (a broken table, say). */
export async function writeRoutes(file: string, routes: RoutingTable | string): Promise<void> {
  await fs.mkdir(path.dirname(file), { recursive: true });
  const tmp = `${file}.${process.pid}.tmp`;
  await fs.writeFile(tmp, typeof routes === 'string' ? routes : serializeRoutingTable(routes));
  await fs.rename(tmp, file);
}

export interface Proxy {
  server: RunningServer;
  config: Config;
  dir: string;
  ca: string;
  /** Every log line the server wrote, parsed. */
  logs: Record<string, unknown>[];
  /** Resolves with the first log line (already written or still to come) that matches. */
  waitForLog(match: (line: Record<string, unknown>) => boolean, timeoutMs?: number): Promise<Record<string, unknown>>;
  close(): Promise<void>;
}

export async function startProxy(routes: RoutingTable | string, settings: Partial<Record<keyof Config, string>> = {}): Promise<Proxy> {
  const dir = await tempDir();
  const letsencryptDir = path.join(dir.path, 'le');
  const config = loadConfig({}, {}, {
    httpPort: '0',
    httpsPort: '0',
    adminPort: '0',
    listenAddress: '127.0.0.1',
    letsencryptDir,
    routesPollMs: '100ms',
    drainTimeoutMs: '5s',
    logLevel: 'debug',
    ...settings,
  });
  await writeRoutes(config.routesPath, routes);
  const logs: Record<string, unknown>[] = [];
  const waiters = new Set<() => void>();
  const sink = new PassThrough();
  let pending = '';
  sink.on('data', (chunk: Buffer) => {
    pending += chunk.toString();
    let nl: number;
    while ((nl = pending.indexOf('\n')) !== -1) {
      logs.push(JSON.parse(pending.slice(0, nl)) as Record<string, unknown>);
      pending = pending.slice(nl + 1);
    }
    for (const wake of waiters) wake();
  });
  const log = createLogger({ level: config.logLevel, format: 'json', destination: sink });
  const server = await startServer(config, log);
  // The local CA's root, for clients to trust; an ACME proxy's certificates chain to the CA's own root.
  let ca = '';
  if (config.issuer === 'local') {
    try {
      ca = await fs.readFile(path.join(localCaDir(config.letsencryptDir), 'root.pem'), 'utf8');
    } catch (err) {
      await server.close();
      throw err;
    }
  }
  return {
    server,
    config,
    dir: dir.path,
    ca,
    logs,
    waitForLog(match, timeoutMs = 5000) {
      return new Promise((resolve, reject) => {
        const check = (): void => {
          const found = logs.find(match);
          if (found === undefined) return;
          clearTimeout(timer);
          waiters.delete(check);
          resolve(found);
        };
        const timer = setTimeout(() => {
          waiters.delete(check);
          reject(new Error(`no matching log line within ${timeoutMs} ms; lines: ${JSON.stringify(logs.slice(-10))}`));
        }, timeoutMs);
        waiters.add(check);
        check();
      });
    },
    async close() {
      await server.close();
      await dir.close();
    },
  };
}

export interface Response {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: string;
}

/** One HTTPS/1.1 request through the proxy, trusting its local CA, with `host` as SNI and Host. */
export function httpsRequest(
  proxy: Proxy,
  host: string,
  options: { path?: string; method?: string; headers?: http.OutgoingHttpHeaders; body?: string | Buffer; agent?: https.Agent | false } = {},
): Promise<Response> {
  return new Promise((resolve, reject) => {
    const req = https.request(
      {
        host: '127.0.0.1',
        port: proxy.server.https.port,
        servername: host,
        ca: proxy.ca,
        path: options.path ?? '/',
        method: options.method ?? 'GET',
        headers: { host, ...options.headers },
        agent: options.agent ?? false,
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString() }));
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    req.end(options.body);
  });
}

export function httpRequest(port: number, host: string, path = '/'): Promise<Response> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, path, headers: { host }, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString() }));
    });
    req.on('error', reject);
    req.end();
  });
}

/** The value of `proximation_limit_hits_total{limit}` on the proxy's admin listener. */
export async function limitHits(proxy: Proxy, limit: string): Promise<number> {
  const res = await httpRequest(proxy.server.admin.port, '127.0.0.1', '/metrics');
  const line = res.body.split('\n').find((l) => l.startsWith(`proximation_limit_hits_total{limit="${limit}"}`));
  if (line === undefined) throw new Error(`no proximation_limit_hits_total series for ${limit}`);
  return Number(line.split(' ').pop());
}

/** One HTTP/2 request through the proxy. */
export async function h2Request(proxy: Proxy, host: string, path = '/'): Promise<Response & { alpn: string | false | undefined }> {
  const session = http2.connect(`https://127.0.0.1:${proxy.server.https.port}`, { ca: proxy.ca, servername: host });
  try {
    return await new Promise((resolve, reject) => {
      session.on('error', reject);
      const stream = session.request({ ':path': path, ':method': 'GET', ':authority': host });
      let headers: http2.IncomingHttpHeaders = {};
      const chunks: Buffer[] = [];
      stream.on('response', (h) => (headers = h));
      stream.on('data', (c: Buffer) => chunks.push(c));
      stream.on('end', () =>
        resolve({ status: Number(headers[':status']), headers: headers as http.IncomingHttpHeaders, body: Buffer.concat(chunks).toString(), alpn: session.alpnProtocol }),
      );
      stream.on('error', reject);
    });
  } finally {
    session.close();
  }
}

/** Helpers whose results are closed after each test of the calling file, newest first. */
export function managed(): {
  defer(close: () => Promise<void>): void;
  proxy(...args: Parameters<typeof startProxy>): Promise<Proxy>;
  upstream(handler: http.RequestListener): Promise<Upstream>;
  rawUpstream(...args: Parameters<typeof startRawUpstream>): Promise<RawUpstream>;
  answeringUpstream(...args: Parameters<typeof startAnsweringUpstream>): ReturnType<typeof startAnsweringUpstream>;
} {
  const cleanup: (() => Promise<void>)[] = [];
  afterEach(async () => {
    while (cleanup.length > 0) await cleanup.pop()!();
  });
  const keep = <T extends { close(): Promise<void> }>(thing: T): T => {
    cleanup.push(() => thing.close());
    return thing;
  };
  return {
    defer: (close) => void cleanup.push(close),
    proxy: async (...args) => keep(await startProxy(...args)),
    upstream: async (handler) => keep(await startUpstream(handler)),
    rawUpstream: async (...args) => keep(await startRawUpstream(...args)),
    answeringUpstream: async (...args) => keep(await startAnsweringUpstream(...args)),
  };
}
