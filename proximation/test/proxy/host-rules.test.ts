// Host rules (RFC 9112 3.2, RFC 9113 8.3.1), with exact bytes on HTTP/1.1 and a node:http2 client:
// what is refused reaches no upstream, and what passes reaches it with exactly one Host.
import http2 from 'node:http2';
import { describe, expect, it } from 'vitest';
import { managed, table } from '../support/fixtures.js';
import { finalResponses, rawHttps } from '../support/raw-http.js';

const resources = managed();
const OK = 'HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok';

async function site() {
  const u = await resources.rawUpstream((_request, socket) => socket.write(OK));
  const p = await resources.proxy(table([{ name: 'app', hosts: ['app.test', 'evil.test'], upstreams: [u.origin] }]));
  return { u, p };
}

/** One HTTP/2 request on `session`: its status (or the stream's error) and its body. */
async function h2(session: http2.ClientHttp2Session, headers: http2.OutgoingHttpHeaders): Promise<{ status: number | string; body: string }> {
  const stream = session.request({ ':method': 'GET', ...headers });
  return new Promise((resolve) => {
    let status: number | string = 0;
    let body = '';
    stream.on('response', (h) => (status = h[':status']!));
    stream.on('data', (c: Buffer) => (body += c.toString()));
    stream.on('close', () => resolve({ status, body }));
    stream.on('error', (err) => (status = String(err)));
  });
}

describe('Host rules', () => {
  it('answer 400 on HTTP/1.1 to two Host lines (same value or not), none, or one that is no authority; nothing goes upstream', async () => {
    const { u, p } = await site();
    for (const head of ['Host: app.test\r\nHost: evil.test', 'Host: app.test\r\nhost: app.test', 'X-No-Host: 1', 'Host: app.test/x', 'Host: user@app.test', 'Host: ']) {
      const got = await rawHttps(p, 'app.test', `GET /h HTTP/1.1\r\n${head}\r\n\r\n`, finalResponses(1));
      expect(got.split('\r\n')[0], head).toBe('HTTP/1.1 400 Bad Request');
      if (head.startsWith('Host: app.test\r\n')) expect(got).toContain('more than one Host header');
    }
    expect(u.requests).toEqual([]);
    const ok = await rawHttps(p, 'app.test', 'GET /h HTTP/1.1\r\nHost: app.test\r\n\r\n', finalResponses(1));
    expect(ok.split('\r\n')[0]).toBe('HTTP/1.1 200 OK');
    expect(u.requests[0]!.match(/\r\nhost: [^\r]*/gi)).toEqual(['\r\nHost: app.test']);
  });

  it('refuse on HTTP/2 a host field that names another authority than :authority, and an absolute :path is reset; an equal one passes as the one Host', async () => {
    const { u, p } = await site();
    const session = http2.connect(`https://127.0.0.1:${p.server.https.port}`, { ca: p.ca, servername: 'app.test' });
    resources.defer(async () => void session.close());
    const mismatch = await h2(session, { ':path': '/m', ':authority': 'app.test', host: 'evil.test' });
    expect(mismatch.status).toBe(400);
    expect(mismatch.body).toContain('names another authority than :authority');
    // Node's HTTP/2 server (nghttp2) resets it itself: absolute-form has no place in :path.
    expect((await h2(session, { ':path': 'https://evil.test/x', ':authority': 'app.test' })).status).toMatch(/PROTOCOL_ERROR/);
    expect(u.requests).toEqual([]);

    // The same authority, written otherwise: passes, and the upstream gets :authority as its one Host.
    expect((await h2(session, { ':path': '/same', ':authority': 'app.test', host: 'APP.test:443' })).status).toBe(200);
    // Only a host field (no :authority): routed by it.
    expect((await h2(session, { ':path': '/only-host', host: 'app.test' })).status).toBe(200);
    expect(u.requests.map((r) => [r.split('\r\n')[0], r.match(/\r\nhost: [^\r]*/gi)])).toEqual([
      ['GET /same HTTP/1.1', ['\r\nhost: app.test']],
      ['GET /only-host HTTP/1.1', ['\r\nhost: app.test']],
    ]);
  });
});
