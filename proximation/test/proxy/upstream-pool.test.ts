import { once } from 'node:events';
import http from 'node:http';
import https from 'node:https';
import net, { type AddressInfo } from 'node:net';
import type { TLSSocket } from 'node:tls';
import { PassThrough, Readable } from 'node:stream';
import type { ProximationError } from '@proximation/shared';
import { describe, expect, it } from 'vitest';
import { UpstreamPool } from '../../src/proxy/upstream-pool.js';
import type { ConnectionOptions, ExchangeHandler, UpstreamRequest } from '../../src/proxy/upstream-connection.js';
import { managed } from '../support/fixtures.js';
import { selfSignedCertificate } from '../support/self-signed.js';

const resources = managed();

interface Outcome {
  status: number;
  headers: Record<string, string | string[]>;
  body: string;
  error?: ProximationError;
}

const OPTIONS: ConnectionOptions = { connectTimeoutMs: 2_000, timeoutMs: 2_000, idleMs: 30_000, maxIdleMs: 120_000 };

function newPool(origin: string, options: Partial<ConnectionOptions> = {}): UpstreamPool {
  const pool = new UpstreamPool(origin, { ...OPTIONS, ...options });
  resources.defer(() => pool.destroy());
  return pool;
}

function get(path = '/', extra: Partial<UpstreamRequest> = {}): UpstreamRequest {
  return { method: 'GET', path, headers: ['host', 'app.test'], body: null, ...extra };
}

/** Runs one exchange to its end; `handler` may override the collecting one's callbacks. */
function exchange(pool: UpstreamPool, request: UpstreamRequest, handler: Partial<ExchangeHandler> = {}): Promise<Outcome> {
  return new Promise((resolve) => {
    const out: Outcome = { status: 0, headers: {}, body: '' };
    pool.request(request, {
      onHead: (status, headers) => Object.assign(out, { status, headers }),
      onData: (chunk) => {
        out.body += chunk.toString();
        return true;
      },
      onEnd: () => resolve(out),
      onError: (error) => resolve({ ...out, error }),
      ...handler,
    });
  });
}

/** A raw TCP upstream: `onRequest` gets each socket and the bytes of its first request head. */
async function rawUpstream(onConnection: (socket: net.Socket, index: number) => void): Promise<{ origin: string; connections: () => number }> {
  let count = 0;
  const sockets = new Set<net.Socket>();
  const server = net.createServer((socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => {});
    onConnection(socket, count++);
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  resources.defer(async () => {
    for (const s of sockets) s.destroy();
    await new Promise((resolve) => server.close(resolve));
  });
  return { origin: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, connections: () => count };
}

/** Calls `answer` with each complete request head that arrives on the socket. */
function onHeads(socket: net.Socket, answer: (head: string, n: number) => void): void {
  let buffered = '';
  let n = 0;
  socket.on('data', (data) => {
    buffered += data.toString('latin1');
    for (let end = buffered.indexOf('\r\n\r\n'); end !== -1; end = buffered.indexOf('\r\n\r\n')) {
      const head = buffered.slice(0, end);
      buffered = buffered.slice(end + 4);
      answer(head, n++);
    }
  });
}

const OK = 'HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok';

describe('connection reuse', () => {
  it('carries sequential requests on one connection and sends the request as given', async () => {
    const seen: string[] = [];
    const upstream = await rawUpstream((socket) => onHeads(socket, (head) => (seen.push(head), socket.write(OK))));
    const pool = newPool(upstream.origin);
    for (let i = 0; i < 3; i++) expect(await exchange(pool, get(`/n${i}`, { headers: ['host', 'app.test', 'x-one', 'a', 'x-one', 'b'] }))).toMatchObject({ status: 200, body: 'ok' });
    expect(upstream.connections()).toBe(1);
    expect(seen[2]).toBe('GET /n2 HTTP/1.1\r\nhost: app.test\r\nx-one: a\r\nx-one: b');
    expect(pool.idleCount).toBe(1);
  });

  it('does not reuse a connection after Connection: close, an unframed body, or bytes past the response', async () => {
    const answers = [
      'HTTP/1.1 200 OK\r\nconnection: close\r\ncontent-length: 2\r\n\r\nok',
      'HTTP/1.1 200 OK\r\n\r\nuntil the close',
      'HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nokEXTRA',
    ];
    const upstream = await rawUpstream((socket, i) =>
      onHeads(socket, () => {
        if (i === 1) socket.end(answers[i]!);
        else socket.write(answers[i]!);
      }),
    );
    const pool = newPool(upstream.origin);
    expect((await exchange(pool, get())).body).toBe('ok');
    expect((await exchange(pool, get())).body).toBe('until the close');
    expect((await exchange(pool, get())).body).toBe('ok');
    expect(pool.idleCount).toBe(0);
    expect(upstream.connections()).toBe(3);
  });

  it("stops reusing a connection when the upstream's Keep-Alive timeout is near", async () => {
    const upstream = await rawUpstream((socket) => onHeads(socket, () => socket.write('HTTP/1.1 200 OK\r\nkeep-alive: timeout=1\r\ncontent-length: 2\r\n\r\nok')));
    const pool = newPool(upstream.origin);
    await exchange(pool, get());
    await exchange(pool, get());
    // timeout=1 leaves no safe idle time at all (a second less, for the race).
    expect(upstream.connections()).toBe(2);
  });

  it('reuses an idle connection within its idle time and opens a new one after it', async () => {
    const upstream = await rawUpstream((socket) => onHeads(socket, () => socket.write(OK)));
    const pool = newPool(upstream.origin, { idleMs: 50 });
    await exchange(pool, get());
    await exchange(pool, get());
    expect(upstream.connections()).toBe(1);
    // Past the idle time (a bounded wait: what is tested is time passing).
    await new Promise((resolve) => setTimeout(resolve, 100));
    await exchange(pool, get());
    expect(upstream.connections()).toBe(2);
  });

  it('sends an idempotent request again on a new connection when a reused one was closed under it', async () => {
    // The first connection answers once, then closes as the next request arrives: the keep-alive race.
    const upstream = await rawUpstream((socket, i) =>
      onHeads(socket, (_head, n) => {
        if (i === 0 && n === 1) socket.destroy();
        else socket.write(OK);
      }),
    );
    const pool = newPool(upstream.origin);
    await exchange(pool, get());
    expect(await exchange(pool, get())).toMatchObject({ status: 200, body: 'ok' });
    expect(upstream.connections()).toBe(2);
  });

  it('does not send a request with a body, or one on a fresh connection, twice', async () => {
    const upstream = await rawUpstream((socket, i) =>
      onHeads(socket, (_head, n) => {
        if (n === 1 || i === 1) socket.destroy();
        else socket.write(OK);
      }),
    );
    const pool = newPool(upstream.origin);
    await exchange(pool, get());
    const post = await exchange(pool, { method: 'POST', path: '/', headers: ['host', 'a', 'content-length', '1'], body: Readable.from([Buffer.from('x')]) });
    expect(post.error?.code).toBe('ERR_UPSTREAM_CLOSED');
    const fresh = await exchange(pool, get());
    expect(fresh.error?.code).toBe('ERR_UPSTREAM_CLOSED');
    expect(upstream.connections()).toBe(2);
  });
});

describe('request bodies', () => {
  it('frames a body of unknown length as chunked, a known one by its length, and an empty POST with length 0', async () => {
    const seen: { headers: http.IncomingHttpHeaders; body: string }[] = [];
    const upstream = await resources.upstream((req, res) => {
      let body = '';
      req.on('data', (c: Buffer) => (body += c.toString()));
      req.on('end', () => {
        seen.push({ headers: req.headers, body });
        res.end('done');
      });
    });
    const pool = newPool(upstream.origin);
    await exchange(pool, { method: 'POST', path: '/', headers: ['host', 'a'], body: Readable.from([Buffer.from('one,'), Buffer.from('two')]) });
    await exchange(pool, { method: 'PUT', path: '/', headers: ['host', 'a', 'content-length', '3'], body: Readable.from([Buffer.from('abc')]) });
    await exchange(pool, { method: 'POST', path: '/', headers: ['host', 'a'], body: null });
    expect(seen.map((s) => [s.headers['transfer-encoding'], s.headers['content-length'], s.body])).toEqual([
      ['chunked', undefined, 'one,two'],
      [undefined, '3', 'abc'],
      [undefined, '0', ''],
    ]);
  });

  it('does not time out while the client is still uploading, and does once the upload is done', async () => {
    const body = new PassThrough();
    const upstream = await rawUpstream((socket) => {
      socket.on('data', () => {});
    });
    const pool = newPool(upstream.origin, { timeoutMs: 100 });
    const started = Date.now();
    const result = exchange(pool, { method: 'POST', path: '/', headers: ['host', 'a'], body });
    body.write('first');
    // Three timeouts' worth of a silent upstream while the client has not finished its body.
    await new Promise((resolve) => setTimeout(resolve, 300));
    body.end('last');
    const outcome = await result;
    expect(outcome.error?.code).toBe('ERR_UPSTREAM_TIMEOUT');
    expect(Date.now() - started).toBeGreaterThanOrEqual(400);
  });

  it('delivers an answer that comes before the upload ends, then drops the connection and lets the rest of the body drain', async () => {
    const body = new PassThrough({ highWaterMark: 1024 });
    let answer!: () => void;
    // The upstream reads the head, then nothing: the upload stalls, and the client's stream is paused.
    const upstream = await rawUpstream((socket) =>
      socket.once('data', () => {
        socket.pause();
        answer = () => socket.write('HTTP/1.1 413 Payload Too Large\r\ncontent-length: 8\r\n\r\ntoo long');
      }),
    );
    const pool = newPool(upstream.origin);
    const result = exchange(pool, { method: 'POST', path: '/', headers: ['host', 'a', 'content-length', '104857600'], body });
    while (!body.isPaused()) {
      body.write(Buffer.alloc(64 * 1024));
      await new Promise((resolve) => setImmediate(resolve));
    }
    answer();
    expect(await result).toMatchObject({ status: 413, body: 'too long' });
    // The client's stream flows into nothing now: 10 MiB more goes through without a reader of our own.
    expect(body.isPaused()).toBe(false);
    for (let i = 0; i < 160; i++) if (!body.write(Buffer.alloc(64 * 1024))) await once(body, 'drain');
    expect(pool.idleCount).toBe(0);
  });

  it('cancels the exchange when the client body stream is destroyed before its end', async () => {
    const body = new PassThrough();
    let upstreamSocketClosed!: () => void;
    const closed = new Promise<void>((resolve) => (upstreamSocketClosed = resolve));
    const upstream = await rawUpstream((socket) => {
      socket.once('data', () => body.destroy());
      socket.on('close', upstreamSocketClosed);
    });
    const pool = newPool(upstream.origin);
    const result = exchange(pool, { method: 'POST', path: '/', headers: ['host', 'a'], body });
    body.write('part');
    expect((await result).error?.code).toBe('ERR_UPSTREAM_ABORTED');
    await closed;
  });
});

describe('responses', () => {
  it('stops reading while the sink is full and carries on after resume()', async () => {
    const chunk = 'x'.repeat(64 * 1024);
    const upstream = await resources.upstream((_req, res) => {
      res.writeHead(200, { 'content-length': chunk.length * 64 });
      for (let i = 0; i < 64; i++) res.write(chunk);
      res.end();
    });
    const pool = newPool(upstream.origin);
    let received = 0;
    let callsWhilePaused = 0;
    let paused = false;
    const done = new Promise<void>((resolve, reject) => {
      const control = pool.request(get(), {
        onHead: () => {},
        onData: (data) => {
          if (paused) callsWhilePaused++;
          received += data.length;
          if (paused || received < 512 * 1024) return true;
          paused = true;
          // Whatever was already read may still arrive; nothing is read after that until resume.
          setImmediate(() => {
            const at = received;
            setImmediate(() => {
              expect(received).toBe(at);
              paused = false;
              control.resume();
            });
          });
          return false;
        },
        onEnd: () => resolve(),
        onError: reject,
      });
    });
    await done;
    expect(received).toBe(chunk.length * 64);
    expect(callsWhilePaused).toBeLessThanOrEqual(1);
  });

  it('hands over body chunks the handler may keep: later reads do not change them', async () => {
    // Distinct bytes in many writes, so that a chunk overwritten by a later read cannot look right.
    const body = Buffer.from(Array.from({ length: 256 * 1024 }, (_, i) => (i * 7 + (i >> 10)) & 0xff));
    const upstream = await resources.upstream((_req, res) => {
      res.writeHead(200, { 'content-length': body.length });
      for (let at = 0; at < body.length; at += 4096) res.write(body.subarray(at, at + 4096));
      res.end();
    });
    const kept: Buffer[] = [];
    const outcome = await exchange(newPool(upstream.origin), get(), {
      onData: (chunk) => {
        kept.push(chunk);
        return true;
      },
    });
    expect(outcome.error).toBeUndefined();
    expect(kept.length).toBeGreaterThan(1);
    expect(Buffer.concat(kept).equals(body)).toBe(true);
  });

  it('reads a response that arrives a few bytes per read: head, chunk sizes and trailers', async () => {
    const response = 'HTTP/1.1 200 OK\r\nx-a: first\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\nx-t: 2\r\n\r\n';
    const upstream = await rawUpstream((socket) => {
      socket.setNoDelay(true);
      onHeads(socket, async () => {
        // Each piece is written in its own turn of the loop, so the pool reads it on its own: what the
        // parser keeps between reads must not be a view of a read buffer that the next read reuses.
        for (let at = 0; at < response.length; at += 3) {
          await new Promise((resolve) => socket.write(response.slice(at, at + 3), resolve));
          await new Promise((resolve) => setImmediate(resolve));
        }
      });
    });
    const outcome = await exchange(newPool(upstream.origin), get());
    expect(outcome).toMatchObject({ status: 200, body: 'hello world' });
    expect(outcome.headers['x-a']).toBe('first');
  });

  it('does not time out while the sink is full, and times out when the upstream stalls after resume()', async () => {
    const body = 'y'.repeat(1024 * 1024);
    // The first response is complete; the second sends all it will in one piece, one byte short.
    const upstream = await rawUpstream((socket) =>
      onHeads(socket, (_head, n) =>
        socket.write(n === 0 ? `HTTP/1.1 200 OK\r\ncontent-length: ${body.length}\r\n\r\n${body}` : 'HTTP/1.1 200 OK\r\ncontent-length: 11\r\n\r\n0123456789'),
      ),
    );
    const pool = newPool(upstream.origin, { timeoutMs: 100 });
    const heldBack = (): Promise<ProximationError | undefined> =>
      new Promise((resolve) => {
        let held = false;
        const control = pool.request(get(), {
          onHead() {},
          onData() {
            if (held) return true;
            held = true;
            // Three timeouts' worth of a client that takes nothing.
            setTimeout(() => control.resume(), 300);
            return false;
          },
          onEnd: () => resolve(undefined),
          onError: resolve,
        });
      });
    expect(await heldBack()).toBeUndefined();
    expect((await heldBack())?.code).toBe('ERR_UPSTREAM_TIMEOUT');
  });

  it('fails a response that stops arriving with ERR_UPSTREAM_TIMEOUT and an invalid one with ERR_UPSTREAM_RESPONSE', async () => {
    const upstream = await rawUpstream((socket, i) =>
      onHeads(socket, () => socket.write(i === 0 ? 'HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\nhalf' : 'HTTP/1.1 200 OK\r\ncontent-length: 1\r\ncontent-length: 2\r\n\r\n')),
    );
    const pool = newPool(upstream.origin, { timeoutMs: 100 });
    const stalled = await exchange(pool, get());
    expect([stalled.status, stalled.body, stalled.error?.code]).toEqual([200, 'half', 'ERR_UPSTREAM_TIMEOUT']);
    const invalid = await exchange(pool, get());
    expect(invalid.error?.code).toBe('ERR_UPSTREAM_RESPONSE');
    expect(invalid.error?.message).toContain('different Content-Length values 1 and 2');
  });

  it('speaks HTTP/1.1 over TLS to an https: upstream it trusts, and refuses one it does not', async () => {
    const certificate = await selfSignedCertificate();
    const server = https.createServer(certificate, (req, res) => {
      const socket = req.socket as TLSSocket;
      res.end(`${socket.getProtocol()} ${socket.alpnProtocol}`);
    });
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    resources.defer(() => new Promise((resolve) => server.close(() => resolve())));
    const origin = `https://127.0.0.1:${(server.address() as AddressInfo).port}`;
    const trusted = await exchange(newPool(origin, { ca: certificate.cert }), get());
    expect(trusted).toMatchObject({ status: 200, body: 'TLSv1.3 http/1.1' });
    const untrusted = await exchange(newPool(origin), get());
    expect(untrusted.error?.code).toBe('ERR_UPSTREAM_CONNECT');
    expect(untrusted.error?.message).toContain('SELF_SIGNED');
  });

  it('ends the exchange with ERR_PROXY_INTERNAL when the handler throws, and drops the connection', async () => {
    const upstream = await rawUpstream((socket) => onHeads(socket, () => socket.write(OK)));
    const pool = newPool(upstream.origin);
    const failed = await exchange(pool, get(), {
      onHead: () => {
        throw new Error('writeHead refused a header');
      },
    });
    expect(failed.error?.code).toBe('ERR_PROXY_INTERNAL');
    expect(failed.error?.message).toContain('writeHead refused a header');
    expect((await exchange(pool, get())).body).toBe('ok');
    expect(upstream.connections()).toBe(2);
  });

  it('reports a refused connection as ERR_UPSTREAM_CONNECT', async () => {
    const server = net.createServer().listen(0, '127.0.0.1');
    await once(server, 'listening');
    const { port } = server.address() as AddressInfo;
    await new Promise((resolve) => server.close(resolve));
    const outcome = await exchange(newPool(`http://127.0.0.1:${port}`), get());
    expect(outcome.error?.code).toBe('ERR_UPSTREAM_CONNECT');
    expect(outcome.error?.message).toContain('ECONNREFUSED');
  });
});

describe('closing', () => {
  it('close() lets the exchange in flight finish, then refuses new requests', async () => {
    let release!: () => void;
    const upstream = await resources.upstream((_req, res) => {
      release = () => res.end('late');
    });
    const pool = newPool(upstream.origin);
    const arrived = new Promise<void>((resolve) => upstream.server.once('request', () => setImmediate(resolve)));
    const inFlight = exchange(pool, get());
    await arrived;
    let closed = false;
    const closing = pool.close().then(() => (closed = true));
    expect(closed).toBe(false);
    release();
    expect((await inFlight).body).toBe('late');
    await closing;
    expect((await exchange(pool, get())).error?.code).toBe('ERR_UPSTREAM_CLOSED');
  });

  it('refuses CR, LF or NUL in the target or a header before sending anything', async () => {
    const upstream = await rawUpstream(() => {});
    const pool = newPool(upstream.origin);
    for (const request of [get('/a\r\nx: y'), get('/', { headers: ['host', 'a\0'] }), get('/', { headers: ['x\n', 'a'] })]) {
      expect((await exchange(pool, request)).error?.code).toBe('ERR_UPSTREAM_REQUEST');
    }
    expect(upstream.connections()).toBe(0);
  });
});
