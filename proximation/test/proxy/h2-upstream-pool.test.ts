import { once } from 'node:events';
import http2 from 'node:http2';
import https from 'node:https';
import net, { type AddressInfo } from 'node:net';
import { Readable } from 'node:stream';
import type { ProximationError } from '@proximation/shared';
import { describe, expect, it } from 'vitest';
import { Http2UpstreamPool, type Http2PoolOptions } from '../../src/proxy/h2-upstream-pool.js';
import type { UpstreamRequest } from '../../src/proxy/upstream-connection.js';
import { managed } from '../support/fixtures.js';
import { readBody, startH2Upstream, type H2Upstream } from '../support/h2-upstream.js';
import { selfSignedCertificate } from '../support/self-signed.js';

const resources = managed();
const OPTIONS: Http2PoolOptions = { connectTimeoutMs: 2_000, timeoutMs: 2_000, idleMs: 30_000 };

interface Outcome {
  informational: number[];
  status: number;
  headers: Record<string, string | string[]>;
  /** onHead said the head ended the response. */
  ended?: boolean;
  body: string;
  trailers?: Record<string, string | string[]>;
  error?: ProximationError;
}

function newPool(origin: string, options: Partial<Http2PoolOptions> = {}): Http2UpstreamPool {
  const pool = new Http2UpstreamPool(origin, { ...OPTIONS, ...options });
  resources.defer(() => pool.destroy());
  return pool;
}

async function upstream(...args: Parameters<typeof startH2Upstream>): Promise<H2Upstream> {
  const u = await startH2Upstream(...args);
  resources.defer(() => u.close());
  return u;
}

function get(path = '/', extra: Partial<UpstreamRequest> = {}): UpstreamRequest {
  return { method: 'GET', path, headers: ['host', 'app.test'], body: null, ...extra };
}

/** Runs one exchange to its end, collecting what the handler is told. */
function exchange(pool: Http2UpstreamPool, request: UpstreamRequest): Promise<Outcome> {
  return new Promise((resolve) => {
    const out: Outcome = { informational: [], status: 0, headers: {}, body: '' };
    pool.request(request, {
      onInformational: (status) => out.informational.push(status),
      onHead: (status, headers, ended) => Object.assign(out, { status, headers, ended }),
      onData: (chunk) => {
        out.body += chunk.toString();
        return true;
      },
      onEnd: (trailers) => resolve({ ...out, trailers }),
      onError: (error) => resolve({ ...out, error }),
    });
  });
}

/** A TCP server that accepts connections and never says anything. */
async function silentServer(): Promise<number> {
  const sockets = new Set<net.Socket>();
  const server = net.createServer((socket) => sockets.add(socket));
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  resources.defer(async () => {
    for (const s of sockets) s.destroy();
    await new Promise((resolve) => server.close(resolve));
  });
  return (server.address() as AddressInfo).port;
}

describe('Http2UpstreamPool', () => {
  it('sends the request with its pseudo-headers and without connection-specific fields, and relays 1xx, body and trailers', async () => {
    const u = await upstream((stream) => {
      void readBody(stream).then((body) => {
        stream.additionalHeaders({ ':status': 103, link: '</a.css>; rel=preload' });
        stream.respond({ ':status': 200, 'content-type': 'text/plain' }, { waitForTrailers: true });
        stream.on('wantTrailers', () => stream.sendTrailers({ 'x-checksum': 'abc' }));
        stream.end(`got ${body.toString()}`);
      });
    });
    const pool = newPool(u.origin);
    const headers = ['Host', 'app.test', 'Connection', 'te', 'TE', 'trailers', 'Keep-Alive', 'timeout=5', 'X-Custom', 'one', 'x-custom', 'two', 'content-type', 'text/plain'];
    const out = await exchange(pool, { method: 'POST', path: '/p?q=1', headers, body: Readable.from([Buffer.from('pay'), Buffer.from('load')]), trailers: () => ['x-sum', '7'] });
    expect(out).toMatchObject({ informational: [103], status: 200, body: 'got payload', trailers: { 'x-checksum': 'abc' } });
    expect(out.headers['content-type']).toBe('text/plain');
    const sent = u.streams[0]!.rawHeaders;
    expect(sent.slice(0, 8)).toEqual([':method', 'POST', ':scheme', 'http', ':authority', 'app.test', ':path', '/p?q=1']);
    expect(sent.slice(8)).toEqual(['te', 'trailers', 'x-custom', 'one', 'x-custom', 'two', 'content-type', 'text/plain']);
  });

  it('says when the head ended the response (END_STREAM on HEADERS, a gRPC trailers-only response) and when a body follows', async () => {
    const u = await upstream((stream, headers) => {
      if (headers[':path'] === '/head-only') stream.respond({ ':status': 200, 'grpc-status': '5' }, { endStream: true });
      else {
        stream.respond({ ':status': 200 });
        stream.end('body');
      }
    });
    const pool = newPool(u.origin);
    expect(await exchange(pool, get('/head-only'))).toMatchObject({ status: 200, ended: true, body: '', headers: { 'grpc-status': '5' } });
    expect(await exchange(pool, get('/with-body'))).toMatchObject({ status: 200, ended: false, body: 'body' });
  });

  it('passes the client trailers on after the body', async () => {
    let trailers: http2.IncomingHttpHeaders | undefined;
    const u = await upstream((stream) => {
      stream.on('trailers', (t) => (trailers = t));
      void readBody(stream).then(() => {
        stream.respond({ ':status': 204 });
        stream.end();
      });
    });
    const out = await exchange(newPool(u.origin), { method: 'POST', path: '/', headers: ['host', 'app.test'], body: Readable.from([Buffer.from('x')]), trailers: () => ['X-Sum', '7'] });
    expect(out.status).toBe(204);
    expect(trailers).toMatchObject({ 'x-sum': '7' });
  });

  it('keeps to the upstream\'s SETTINGS_MAX_CONCURRENT_STREAMS by opening more sessions, and reuses them', async () => {
    const held: http2.ServerHttp2Stream[] = [];
    const u = await upstream(
      (stream, headers) => {
        if (!headers[':path']!.startsWith('/held/')) {
          stream.respond({ ':status': 200 });
          stream.end();
          return;
        }
        held.push(stream);
        if (held.length < 5) return;
        for (const s of held) {
          s.respond({ ':status': 200 });
          s.end('ok');
        }
      },
      { settings: { maxConcurrentStreams: 2 } },
    );
    const pool = newPool(u.origin);
    // The first exchange brings the upstream's SETTINGS in.
    expect((await exchange(pool, get('/first'))).status).toBe(200);
    const outcomes = await Promise.all([1, 2, 3, 4, 5].map((n) => exchange(pool, get(`/held/${n}`))));
    expect(outcomes.map((o) => o.body)).toEqual(['ok', 'ok', 'ok', 'ok', 'ok']);
    const perSession = new Map<number, number>();
    for (const s of u.streams.slice(1)) perSession.set(s.session, (perSession.get(s.session) ?? 0) + 1);
    expect([...perSession.values()].every((n) => n <= 2), JSON.stringify([...perSession])).toBe(true);
    expect(u.sessions()).toBe(3);
    expect(pool.sessionCount).toBe(3);
    expect((await exchange(pool, get('/again'))).status).toBe(200);
    expect(u.sessions()).toBe(3);
  });

  it('verifies an h2 upstream\'s certificate and requires h2 by ALPN', async () => {
    const identity = await selfSignedCertificate();
    const u = await upstream((stream) => {
      stream.respond({ ':status': 200 });
      stream.end('over tls');
    }, { tls: identity });
    expect(u.origin.startsWith('h2://')).toBe(true);
    expect(await exchange(newPool(u.origin, { ca: identity.cert }), get())).toMatchObject({ status: 200, body: 'over tls' });
    const untrusted = await exchange(newPool(u.origin), get());
    expect(untrusted.error).toMatchObject({ code: 'ERR_UPSTREAM_CONNECT' });
    expect(untrusted.error!.message).toMatch(/SELF_SIGNED|self.signed/i);

    const http1Only = https.createServer(identity, (_req, res) => res.end('http/1.1'));
    http1Only.listen(0, '127.0.0.1');
    await once(http1Only, 'listening');
    resources.defer(() => new Promise((resolve) => http1Only.close(() => resolve())));
    const port = (http1Only.address() as AddressInfo).port;
    const noH2 = await exchange(newPool(`h2://127.0.0.1:${port}`, { ca: identity.cert }), get());
    expect(noH2.error).toMatchObject({ code: 'ERR_UPSTREAM_CONNECT' });
    expect(noH2.error!.message).toMatch(/h2|ALPN/);
  });

  it('fails with the HTTP/1.1 pool\'s error codes: refused, connect timeout, response timeout, reset', async () => {
    const refusing = net.createServer();
    refusing.listen(0, '127.0.0.1');
    await once(refusing, 'listening');
    const closedPort = (refusing.address() as AddressInfo).port;
    await new Promise((resolve) => refusing.close(resolve));
    expect((await exchange(newPool(`h2c://127.0.0.1:${closedPort}`), get())).error).toMatchObject({ code: 'ERR_UPSTREAM_CONNECT' });

    const silent = await silentServer();
    expect((await exchange(newPool(`h2://127.0.0.1:${silent}`, { connectTimeoutMs: 300 }), get())).error).toMatchObject({ code: 'ERR_UPSTREAM_CONNECT_TIMEOUT' });

    const u = await upstream((stream, headers) => {
      if (headers[':path'] === '/reset') stream.close(http2.constants.NGHTTP2_INTERNAL_ERROR);
      // '/silent' gets nothing.
    });
    expect((await exchange(newPool(u.origin, { timeoutMs: 300 }), get('/silent'))).error).toMatchObject({ code: 'ERR_UPSTREAM_TIMEOUT' });
    const reset = await exchange(newPool(u.origin), get('/reset'));
    expect(reset.error).toMatchObject({ code: 'ERR_UPSTREAM_CLOSED' });
  });

  it('sends a bodyless request the upstream refused unprocessed once more', async () => {
    let refused = 0;
    const u = await upstream((stream) => {
      if (refused++ === 0) {
        stream.close(http2.constants.NGHTTP2_REFUSED_STREAM);
        return;
      }
      stream.respond({ ':status': 200 });
      stream.end('second try');
    });
    expect(await exchange(newPool(u.origin), get())).toMatchObject({ status: 200, body: 'second try' });
    expect(refused).toBe(2);
  });

  it('cancels the stream when the exchange is aborted, and close() waits for streams in flight', async () => {
    let cancelled: number | undefined;
    let release: (() => void) | undefined;
    const u = await upstream((stream, headers) => {
      if (headers[':path'] === '/cancel') {
        stream.on('close', () => (cancelled = stream.rstCode));
        return;
      }
      release = () => {
        stream.respond({ ':status': 200 });
        stream.end('finished');
      };
    });
    const pool = newPool(u.origin);
    const aborted = new Promise<Outcome>((resolve) => {
      const control = pool.request(get('/cancel'), {
        onHead: () => undefined,
        onData: () => true,
        onEnd: () => resolve({ informational: [], status: 0, headers: {}, body: 'ended?' }),
        onError: (error) => resolve({ informational: [], status: 0, headers: {}, body: '', error }),
      });
      setTimeout(() => control.abort(), 100);
    });
    expect((await aborted).error).toMatchObject({ code: 'ERR_UPSTREAM_ABORTED' });
    await expect.poll(() => cancelled).toBe(http2.constants.NGHTTP2_CANCEL);

    const inFlight = exchange(pool, get('/slow'));
    await expect.poll(() => release !== undefined).toBe(true);
    const closed = pool.close();
    expect((await exchange(pool, get('/late'))).error).toMatchObject({ code: 'ERR_UPSTREAM_CLOSED' });
    release!();
    expect(await inFlight).toMatchObject({ status: 200, body: 'finished' });
    await closed;
    expect(pool.sessionCount).toBe(0);
  });
});
