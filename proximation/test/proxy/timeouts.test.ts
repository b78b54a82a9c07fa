/**
 * Each client and upstream timeout has one meaning (README: Timeouts): the idle timeout ends a connection
 * only when it is the client's turn, so a request waiting on the upstream gets its answer however long
 * the idle timeout is; the upstream timeout answers 504 on HTTP/1.1 and HTTP/2 alike; and every cut
 * the proxy makes is logged with the timeout that made it.
 *
 * No test waits a fixed time for a timeout to pass. An idle "witness" connection opened after the
 * request's last byte is cut by the same idle timeout, so once it is gone the request's connection has
 * been through its own idle timer too.
 */
import { once } from 'node:events';
import http2 from 'node:http2';
import type net from 'node:net';
import tls from 'node:tls';
import { describe, expect, it } from 'vitest';
import { h2Request, httpsRequest, limitHits, managed, table, type Proxy } from '../support/fixtures.js';
import { within } from '../support/process.js';
import { finalResponses, rawHttps } from '../support/raw-http.js';

const resources = managed();

const ANSWER = 'HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nlate!';

/** A raw upstream that answers nothing by itself: `held` gets each request's socket, to answer later (or never). */
async function holdingUpstream() {
  const held: net.Socket[] = [];
  const arrivals = new Set<() => void>();
  const u = await resources.rawUpstream((_request, socket) => {
    held.push(socket);
    for (const wake of arrivals) wake();
  });
  const arrived = (count: number): Promise<void> =>
    new Promise((resolve) => {
      const check = (): void => {
        if (held.length < count) return;
        arrivals.delete(check);
        resolve();
      };
      arrivals.add(check);
      check();
    });
  return { u, held, arrived };
}

/** Opens an HTTP/1.1 connection that sends nothing and resolves once the proxy has closed it. */
async function witnessIdleCut(p: Proxy): Promise<void> {
  const socket = tls.connect({ host: '127.0.0.1', port: p.server.https.port, servername: 'app.test', ca: p.ca, ALPNProtocols: ['http/1.1'] });
  resources.defer(async () => void socket.destroy());
  socket.on('error', () => {});
  socket.resume();
  await within(once(socket, 'close'), 10_000, 'the idle timeout closing a connection that sent nothing');
}

function connectH2(p: Proxy): http2.ClientHttp2Session {
  const session = http2.connect(`https://127.0.0.1:${p.server.https.port}`, { ca: p.ca, servername: 'app.test' });
  session.on('error', () => {});
  resources.defer(async () => void session.destroy());
  return session;
}

function accessLine(p: Proxy, path: string): Promise<Record<string, unknown>> {
  return p.waitForLog((l) => l.part === 'access' && l.path === path, 10_000);
}

/** The request as the proxy sends it upstream, up to the forwarded-for fields it adds. */
function expectForwardedGet(sent: string | undefined, path: string): void {
  expect(sent).toMatch(new RegExp(`^GET ${path} HTTP/1\\.1\\r\\n`));
  expect(sent).toMatch(/\r\nx-forwarded-for: 127\.0\.0\.1\r\n/);
  expect(sent!.endsWith('\r\n\r\n')).toBe(true);
}

describe('a request waiting on the upstream is not idle', () => {
  it('HTTP/1.1 gets the response the upstream sends after the idle timeout has passed', async () => {
    const { u, held, arrived } = await holdingUpstream();
    const p = await resources.proxy(table([{ name: 'app', hosts: ['app.test'], upstreams: [u.origin] }]), { idleTimeoutMs: '1s', upstreamTimeoutMs: '30s' });
    const response = rawHttps(p, 'app.test', 'GET /late HTTP/1.1\r\nHost: app.test\r\n\r\n', finalResponses(1), 30_000);
    await arrived(1);
    await witnessIdleCut(p);
    held[0]!.write(ANSWER);
    const got = await response;
    expect(got).toMatch(/^HTTP\/1\.1 200 OK\r\n/);
    expect(got.endsWith('\r\n\r\nlate!')).toBe(true);
    expectForwardedGet(u.requests[0], '/late');
    const line = await accessLine(p, '/late');
    expect(line).toMatchObject({ status: 200, bytes: 5 });
    expect(line.timeout).toBeUndefined();
  });

  it('HTTP/2 gets it too: no GOAWAY, no reset stream', async () => {
    const { u, held, arrived } = await holdingUpstream();
    const p = await resources.proxy(table([{ name: 'app', hosts: ['app.test'], upstreams: [u.origin] }]), { idleTimeoutMs: '1s', upstreamTimeoutMs: '30s' });
    const session = connectH2(p);
    let goaway = false;
    session.on('goaway', () => (goaway = true));
    const stream = session.request({ ':path': '/late2', ':authority': 'app.test' });
    let status = 0;
    let body = '';
    stream.on('response', (h) => (status = Number(h[':status'])));
    stream.on('data', (c: Buffer) => (body += c.toString()));
    const ended = once(stream, 'end');
    await arrived(1);
    await witnessIdleCut(p);
    held[0]!.write(ANSWER);
    await within(ended, 10_000, 'the HTTP/2 response');
    expect({ status, body, goaway, rstCode: stream.rstCode }).toEqual({ status: 200, body: 'late!', goaway: false, rstCode: http2.constants.NGHTTP2_NO_ERROR });
    expectForwardedGet(u.requests[0], '/late2');
  });
});

describe('the upstream timeout', () => {
  it('answers 504 on HTTP/1.1 and on HTTP/2 when the upstream says nothing, idle timeout shorter, and logs it as the upstream timeout', async () => {
    const { u, arrived } = await holdingUpstream();
    const p = await resources.proxy(table([{ name: 'app', hosts: ['app.test'], upstreams: [u.origin] }]), { idleTimeoutMs: '1s', upstreamTimeoutMs: '2s' });
    const [h1, h2] = await Promise.all([httpsRequest(p, 'app.test', { path: '/h1' }), h2Request(p, 'app.test', '/h2')]);
    expect(h1.status).toBe(504);
    expect(h1.body).toContain('did not answer in time');
    expect(h2.status).toBe(504);
    expect(h2.body).toContain('did not answer in time');
    await arrived(2);
    const sent = [...u.requests].sort();
    expectForwardedGet(sent[0], '/h1');
    expectForwardedGet(sent[1], '/h2');
    // Exactly one request each: a timed-out request is not sent again.
    expect(u.requests).toHaveLength(2);
    for (const [path, protocol] of [['/h1', '1.1'], ['/h2', '2.0']] as const) {
      const line = await accessLine(p, path);
      expect(line).toMatchObject({ status: 504, protocol, timeout: 'upstream' });
      expect(String(line.error)).toMatch(/sent nothing for 2000 ms/);
    }
  });
});

describe('cuts by the proxy are logged as the timeout that made them', () => {
  it('idle: a client that stops reading a response', async () => {
    const upstream = await resources.upstream((_req, res) => {
      // Writes until the proxy stops reading (the client holds the response back), then waits.
      const chunk = Buffer.alloc(64 * 1024, 'x');
      const pump = (): void => {
        while (!res.destroyed && res.write(chunk));
      };
      res.on('drain', pump);
      res.writeHead(200, { 'content-type': 'application/octet-stream' });
      pump();
    });
    const p = await resources.proxy(table([{ name: 'app', hosts: ['app.test'], upstreams: [upstream.origin] }]), { idleTimeoutMs: '1s', upstreamTimeoutMs: '30s' });
    const socket = tls.connect({ host: '127.0.0.1', port: p.server.https.port, servername: 'app.test', ca: p.ca, ALPNProtocols: ['http/1.1'] });
    resources.defer(async () => void socket.destroy());
    socket.on('error', () => {});
    await once(socket, 'secureConnect');
    socket.write('GET /stalled HTTP/1.1\r\nHost: app.test\r\n\r\n');
    // Reads the head, then nothing more.
    await once(socket, 'data');
    socket.pause();
    const line = await accessLine(p, '/stalled');
    expect(line).toMatchObject({ status: 0, timeout: 'idle' });
    expect(String(line.error)).toContain('PROXIMATION_IDLE_TIMEOUT');
  });

  it('idle: an HTTP/2 client that stops reading a response (its flow-control window stays shut)', async () => {
    const upstream = await resources.upstream((_req, res) => {
      res.writeHead(200, { 'content-type': 'application/octet-stream' });
      res.write(Buffer.alloc(1024 * 1024, 'y'));
    });
    const p = await resources.proxy(table([{ name: 'app', hosts: ['app.test'], upstreams: [upstream.origin] }]), { idleTimeoutMs: '1s', upstreamTimeoutMs: '30s' });
    const session = connectH2(p);
    const stream = session.request({ ':path': '/stalled2', ':authority': 'app.test' });
    stream.on('error', () => {});
    await once(stream, 'response');
    // Never read: the client's window closes after 64 KiB and the rest waits in the proxy.
    stream.pause();
    const line = await accessLine(p, '/stalled2');
    expect(line).toMatchObject({ status: 0, protocol: '2.0', timeout: 'idle' });
    await within(once(session, 'close'), 10_000, 'the proxy closing the stalled session');
  });

  it('idle: an upload the client stops sending, well before the request timeout', async () => {
    const { u } = await holdingUpstream();
    const p = await resources.proxy(table([{ name: 'app', hosts: ['app.test'], upstreams: [u.origin] }]), { idleTimeoutMs: '1s', requestTimeoutMs: '5m' });
    const got = await rawHttps(p, 'app.test', 'POST /half HTTP/1.1\r\nHost: app.test\r\nContent-Length: 100\r\n\r\n0123456789', () => false, 30_000);
    // Cut without an answer: the upload had started on its way upstream.
    expect(got).toBe('');
    const line = await accessLine(p, '/half');
    expect(line).toMatchObject({ status: 0, timeout: 'idle' });
    expect(u.connections()).toBe(1);
  });

  it('header: a request head that never ends gets 408, counted (no request: no access line, as for other refusals)', async () => {
    const { u } = await holdingUpstream();
    const p = await resources.proxy(table([{ name: 'app', hosts: ['app.test'], upstreams: [u.origin] }]), { headersTimeoutMs: '500ms', idleTimeoutMs: '30s' });
    expect(await limitHits(p, 'headers_timeout')).toBe(0);
    const got = await rawHttps(p, 'app.test', 'GET /never-ends HTTP/1.1\r\nHost: app.test\r\nx-partial: ', () => false);
    expect(got).toMatch(/^HTTP\/1\.1 408 /);
    // A connection that sends nothing at all is the same case to Node.
    expect(await rawHttps(p, 'app.test', '', () => false)).toMatch(/^HTTP\/1\.1 408 /);
    expect(await limitHits(p, 'headers_timeout')).toBe(2);
    expect(p.logs.filter((l) => l.part === 'access')).toEqual([]);
    expect(u.connections()).toBe(0);
  });

  it('body: an upload that stops before its end, on HTTP/1.1 (408) and HTTP/2 (reset)', async () => {
    const { u } = await holdingUpstream();
    const p = await resources.proxy(table([{ name: 'app', hosts: ['app.test'], upstreams: [u.origin] }]), {
      headersTimeoutMs: '500ms',
      requestTimeoutMs: '1500ms',
      idleTimeoutMs: '30s',
    });
    const h1 = rawHttps(p, 'app.test', 'POST /upload1 HTTP/1.1\r\nHost: app.test\r\nContent-Length: 100\r\n\r\n0123456789', () => false, 30_000);
    const session = connectH2(p);
    const stream = session.request({ ':method': 'POST', ':path': '/upload2', ':authority': 'app.test', 'content-length': '100' }, { endStream: false });
    stream.on('error', () => {});
    stream.write('0123456789');
    const reset = once(stream, 'close');
    expect(await h1).toMatch(/^HTTP\/1\.1 408 /);
    await within(reset, 10_000, 'the HTTP/2 upload reset at the request timeout');
    expect(stream.rstCode).toBe(http2.constants.NGHTTP2_CANCEL);
    for (const [path, status] of [['/upload1', 408], ['/upload2', 0]] as const) {
      const line = await accessLine(p, path);
        expect(line).toMatchObject({ status, timeout: 'body' });
      expect(String(line.error)).toContain('PROXIMATION_REQUEST_TIMEOUT');
    }
    // Both went upstream as their bodies streamed, and neither was complete.
    expect(u.connections()).toBe(2);
    expect(u.requests).toEqual([]);
  });

  it('drain: a request still waiting at the drain deadline', async () => {
    const { u, arrived } = await holdingUpstream();
    const p = await resources.proxy(table([{ name: 'app', hosts: ['app.test'], upstreams: [u.origin] }]), { drainTimeoutMs: '500ms', upstreamTimeoutMs: '30s' });
    const response = httpsRequest(p, 'app.test', { path: '/at-shutdown' }).then(
      () => 'answered',
      () => 'cut',
    );
    await arrived(1);
    await p.server.close();
    expect(await response).toBe('cut');
    const line = await accessLine(p, '/at-shutdown');
    expect(line).toMatchObject({ status: 0, timeout: 'drain' });
    expect(String(line.error)).toContain('PROXIMATION_DRAIN_TIMEOUT');
  });
});
