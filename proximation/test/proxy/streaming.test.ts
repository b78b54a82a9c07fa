/**
 * Bodies stream through the proxy with back-pressure: while the receiving side reads nothing, the
 * sending side is held back after a few socket buffers' worth, so the proxy never holds a body in memory.
 */
import http from 'node:http';
import https from 'node:https';
import { Readable } from 'node:stream';
import { expect, it } from 'vitest';
import { startProxy, startUpstream, table, type Proxy, type Upstream, managed } from '../support/fixtures.js';

const MiB = 1024 * 1024;
const TOTAL = 256 * MiB;
/** Socket buffers on the way (client, TLS, proxy, upstream) hold a few MiB; a body is far more. */
const MAX_IN_FLIGHT = 32 * MiB;

const resources = managed();

function source(total: number, counter: { produced: number }): Readable {
  const chunk = Buffer.alloc(64 * 1024, 'a');
  return new Readable({
    read() {
      if (counter.produced >= total) return void this.push(null);
      counter.produced += chunk.length;
      this.push(chunk);
    },
  });
}

/** Resolves once `read()` has stopped changing for `quietMs`: the sender is held back. */
async function stalled(read: () => number, quietMs = 300, deadlineMs = 10_000): Promise<number> {
  const end = Date.now() + deadlineMs;
  let last = read();
  for (;;) {
    await new Promise((r) => setTimeout(r, quietMs));
    const now = read();
    if (now === last) return now;
    if (Date.now() > end) throw new Error(`still moving after ${deadlineMs} ms (${now} bytes)`);
    last = now;
  }
}

async function setup(handler: http.RequestListener): Promise<Proxy> {
  const upstream: Upstream = await startUpstream(handler);
  resources.defer(() => upstream.close());
  const proxy = await startProxy(table([{ name: 'app', hosts: ['app.test'], upstreams: [upstream.origin] }]));
  resources.defer(() => proxy.close());
  return proxy;
}

// 8 s alone; 256 MiB through TLS twice took more than 60 s once on a machine at load 10.
it('holds an upload back while the upstream reads nothing, then streams all of it', { timeout: 180_000 }, async () => {
  let upstreamReq!: http.IncomingMessage;
  let arrived!: () => void;
  const headersArrived = new Promise<void>((resolve) => (arrived = resolve));
  const proxy = await setup((req, res) => {
    upstreamReq = req;
    req.pause();
    let received = 0;
    req.on('data', (c: Buffer) => (received += c.length));
    req.on('end', () => res.end(String(received)));
    arrived();
  });
  const counter = { produced: 0 };
  const buffersBefore = process.memoryUsage().arrayBuffers;
  const response = new Promise<string>((resolve, reject) => {
    const req = https.request(
      { host: '127.0.0.1', port: proxy.server.https.port, servername: 'app.test', ca: proxy.ca, method: 'PUT', path: '/upload', headers: { host: 'app.test' }, agent: false },
      (res) => {
        let body = '';
        res.on('data', (c: Buffer) => (body += c.toString()));
        res.on('end', () => resolve(body));
      },
    );
    req.on('error', reject);
    source(TOTAL, counter).pipe(req);
  });
  await headersArrived;
  const heldAt = await stalled(() => counter.produced);
  expect(heldAt).toBeLessThan(MAX_IN_FLIGHT);
  // What sits in memory while held back: Buffers (the chunks) live outside the V8 heap.
  expect(process.memoryUsage().arrayBuffers - buffersBefore).toBeLessThan(MAX_IN_FLIGHT);
  upstreamReq.resume();
  expect(Number(await response)).toBe(TOTAL);
});

it('holds a download back while the client reads nothing, then streams all of it', { timeout: 180_000 }, async () => {
  const counter = { produced: 0 };
  const proxy = await setup((_req, res) => {
    res.writeHead(200, { 'content-length': TOTAL });
    source(TOTAL, counter).pipe(res);
  });
  const buffersBefore = process.memoryUsage().arrayBuffers;
  const res = await new Promise<http.IncomingMessage>((resolve, reject) => {
    https
      .get({ host: '127.0.0.1', port: proxy.server.https.port, servername: 'app.test', ca: proxy.ca, path: '/download', headers: { host: 'app.test' }, agent: false }, resolve)
      .on('error', reject);
  });
  res.pause();
  const heldAt = await stalled(() => counter.produced);
  expect(heldAt).toBeLessThan(MAX_IN_FLIGHT);
  expect(process.memoryUsage().arrayBuffers - buffersBefore).toBeLessThan(MAX_IN_FLIGHT);
  let received = 0;
  res.on('data', (c: Buffer) => (received += c.length));
  const ended = new Promise((resolve) => res.on('end', resolve));
  res.resume();
  await ended;
  expect(received).toBe(TOTAL);
});
