/**
 * CONNECT asks a forward proxy for a tunnel, which a reverse proxy is not: HTTP/1.1 CONNECT gets 405 with
 * Allow on both listeners (not a bare close) and an access-log line on HTTPS, and nothing reaches an
 * upstream; HTTP/2 CONNECT without `:protocol` gets the same 405. RFC 8441's extended CONNECT is a
 * WebSocket and is tested in websocket-over-h2.test.ts.
 */
import { once } from 'node:events';
import http2 from 'node:http2';
import net from 'node:net';
import { describe, expect, it } from 'vitest';
import { managed, table } from '../support/fixtures.js';
import { rawHttps } from '../support/raw-http.js';

const resources = managed();

const ALLOW = 'allow: GET, HEAD, POST, PUT, DELETE, PATCH, OPTIONS\r\n';

async function setup() {
  const u = await resources.rawUpstream((_request, socket) => socket.write('HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n'));
  const p = await resources.proxy(table([{ name: 'app', hosts: ['app.test'], upstreams: [u.origin] }]));
  return { u, p };
}

describe('CONNECT', () => {
  it('answers an HTTP/1.1 CONNECT on HTTPS with 405 and Allow, logs it, and closes; nothing reaches the upstream', async () => {
    const { u, p } = await setup();
    // The bytes after the head would be the tunnel's; they must not be taken as a request.
    const got = await rawHttps(p, 'app.test', 'CONNECT other.test:443 HTTP/1.1\r\nHost: other.test:443\r\n\r\nGET / HTTP/1.1\r\nHost: app.test\r\n\r\n', () => false);
    expect(got).toMatch(/^HTTP\/1\.1 405 Method Not Allowed\r\n/);
    expect(got.toLowerCase()).toContain(ALLOW.toLowerCase());
    expect(got.toLowerCase()).toContain('connection: close\r\n');
    expect(got).toContain('CONNECT is not supported');
    // One response only, and the connection closed (rawHttps resolved on the close).
    expect(got.match(/HTTP\/1\.1 /g)).toHaveLength(1);
    const line = await p.waitForLog((l) => l.part === 'access' && l.method === 'CONNECT');
    expect(line).toMatchObject({ status: 405, path: 'other.test:443', host: 'other.test:443', protocol: '1.1', client: '127.0.0.1' });
    expect(u.requests).toEqual([]);
    expect(u.connections()).toBe(0);
  });

  it('answers CONNECT on the plain-HTTP listener with 405 and Allow', async () => {
    const { u, p } = await setup();
    const socket = net.connect(p.server.http.port, '127.0.0.1');
    resources.defer(async () => void socket.destroy());
    await once(socket, 'connect');
    socket.write('CONNECT app.test:443 HTTP/1.1\r\nHost: app.test:443\r\n\r\n');
    let got = '';
    socket.on('data', (c: Buffer) => (got += c.toString('latin1')));
    await once(socket, 'close');
    expect(got).toMatch(/^HTTP\/1\.1 405 Method Not Allowed\r\n/);
    expect(got.toLowerCase()).toContain(ALLOW.toLowerCase());
    expect(u.connections()).toBe(0);
  });

  it('answers an HTTP/2 CONNECT without :protocol with 405 and Allow, logged, and the session serves on', async () => {
    const { u, p } = await setup();
    const session = http2.connect(`https://127.0.0.1:${p.server.https.port}`, { ca: p.ca, servername: 'app.test' });
    resources.defer(async () => void session.destroy());
    const head = await new Promise<http2.IncomingHttpHeaders>((resolve, reject) => {
      const stream = session.request({ ':method': 'CONNECT', ':authority': 'other.test:443' }, { endStream: false });
      stream.on('response', resolve);
      stream.on('error', reject);
      stream.resume();
    });
    expect(head[':status']).toBe(405);
    expect(head.allow).toBe('GET, HEAD, POST, PUT, DELETE, PATCH, OPTIONS');
    await p.waitForLog((l) => l.part === 'access' && l.method === 'CONNECT' && l.protocol === '2.0' && l.status === 405);
    expect(u.requests).toEqual([]);
    const next = await new Promise<number>((resolve, reject) => {
      const stream = session.request({ ':path': '/after', ':authority': 'app.test' });
      stream.on('response', (h) => resolve(Number(h[':status'])));
      stream.on('error', reject);
      stream.resume();
    });
    expect(next).toBe(200);
    expect(u.requests[0]).toMatch(/^GET \/after HTTP\/1\.1\r\n/);
  });

});
