// 421 Misdirected Request (RFC 9110 15.5.20): a request for a routed host that the connection's
// certificate (chosen by SNI) does not cover reaches no upstream; one it covers, a wildcard's included,
// is served. Exact bytes on HTTP/1.1, a node:http2 session reused across hosts as a coalescing browser
// does, a resumed TLS session, and the plain-HTTP listener, which is not concerned.
import http2 from 'node:http2';
import { describe, expect, it } from 'vitest';
import { httpRequest, managed, table } from '../support/fixtures.js';
import { finalResponses, rawHttps, responses } from '../support/raw-http.js';
import { handshake, newSession, refusal } from '../tls/helpers.js';

const resources = managed();
const OK = 'HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok';

async function sites() {
  const u = await resources.rawUpstream((_request, socket) => socket.write(OK));
  const p = await resources.proxy(
    table([
      { name: 'app', hosts: ['app.test', 'other.test'], upstreams: [u.origin] },
      { name: 'wild', hosts: ['*.wild.test'], upstreams: [u.origin] },
    ]),
  );
  return { u, p };
}

const statusLine = (received: string): string => received.split('\r\n')[0]!;
const get = (host: string, path = '/'): string => `GET ${path} HTTP/1.1\r\nHost: ${host}\r\n\r\n`;

describe('misdirected requests', () => {
  it('answer 421 on HTTP/1.1 to a Host that the SNI name\'s certificate does not cover, and serve one that a wildcard certificate covers', async () => {
    const { u, p } = await sites();
    const refused = await rawHttps(p, 'app.test', get('other.test', '/x'), finalResponses(1));
    expect(statusLine(refused)).toBe('HTTP/1.1 421 Misdirected Request');
    expect(refused).toContain(`certificate, served for "app.test", does not cover host "other.test"`);
    expect(statusLine(await rawHttps(p, 'a.wild.test', get('app.test'), finalResponses(1)))).toBe('HTTP/1.1 421 Misdirected Request');
    // A WebSocket upgrade likewise, on its socket.
    const upgrade = await rawHttps(
      p,
      'app.test',
      'GET /ws HTTP/1.1\r\nHost: other.test\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n',
      finalResponses(1),
    );
    expect(statusLine(upgrade)).toBe('HTTP/1.1 421 Misdirected Request');
    expect(u.requests).toEqual([]);
    const line = await p.waitForLog((l) => l.part === 'access' && l.status === 421);
    expect(line).toMatchObject({ host: 'other.test', path: '/x' });

    // Covered: the name itself (any case, with a port), and another label under the served wildcard.
    const served = await rawHttps(p, 'a.wild.test', get('B.wild.test:443', '/w') + get('a.wild.test', '/a'), finalResponses(2));
    expect(responses(served).map(statusLine)).toEqual(['HTTP/1.1 200 OK', 'HTTP/1.1 200 OK']);
    expect(u.requests.map((r) => r.split('\r\n').slice(0, 2))).toEqual([
      ['GET /w HTTP/1.1', 'Host: B.wild.test:443'],
      ['GET /a HTTP/1.1', 'Host: a.wild.test'],
    ]);
  });

  it('answer 421 on a reused HTTP/2 session for a host its certificate does not cover, and keep serving the session', async () => {
    const { u, p } = await sites();
    const session = http2.connect(`https://127.0.0.1:${p.server.https.port}`, { ca: p.ca, servername: 'x.wild.test' });
    resources.defer(async () => void session.close());
    const status = (authority: string, path: string): Promise<unknown> =>
      new Promise((resolve, reject) => {
        const stream = session.request({ ':method': 'GET', ':path': path, ':authority': authority });
        stream.on('response', (h) => resolve(h[':status']));
        stream.on('error', reject);
        stream.resume();
      });
    expect(await status('app.test', '/coalesced')).toBe(421);
    expect(await status('y.wild.test', '/covered')).toBe(200);
    expect(u.requests.map((r) => r.split('\r\n')[0])).toEqual(['GET /covered HTTP/1.1']);
  });

  it('judge a resumed TLS session (which skips the certificate choice) by its SNI name alike', async () => {
    const { u, p } = await sites();
    const first = await newSession(p.server.https.port, { servername: 'app.test', ca: p.ca, maxVersion: 'TLSv1.3' });
    const resumed = { session: first.session, maxVersion: 'TLSv1.3' as const };
    expect((await handshake(p.server.https.port, { servername: 'app.test', ca: p.ca, ...resumed })).reused).toBe(true);
    expect(statusLine(await rawHttps(p, 'app.test', get('other.test'), finalResponses(1), 10_000, resumed))).toBe('HTTP/1.1 421 Misdirected Request');
    expect(statusLine(await rawHttps(p, 'app.test', get('app.test', '/resumed'), finalResponses(1), 10_000, resumed))).toBe('HTTP/1.1 200 OK');
    expect(u.requests.map((r) => r.split('\r\n')[0])).toEqual(['GET /resumed HTTP/1.1']);
  });

  it('are served when they come from a trusted proxy, which may carry several hosts on one connection', async () => {
    const u = await resources.rawUpstream((_request, socket) => socket.write(OK));
    const p = await resources.proxy(table([{ name: 'app', hosts: ['app.test', 'other.test'], upstreams: [u.origin] }]), { trustedProxies: '127.0.0.0/8' });
    const got = await rawHttps(p, 'app.test', get('app.test', '/first') + get('other.test', '/second'), finalResponses(2));
    expect(responses(got).map(statusLine)).toEqual(['HTTP/1.1 200 OK', 'HTTP/1.1 200 OK']);
    expect(u.requests.map((r) => r.split('\r\n').slice(0, 2))).toEqual([
      ['GET /first HTTP/1.1', 'Host: app.test'],
      ['GET /second HTTP/1.1', 'Host: other.test'],
    ]);
  });

  it('leave connections without SNI no certificate at all, and the plain-HTTP listener redirecting by Host', async () => {
    const { p } = await sites();
    // An IP literal sends no SNI: there is no default certificate, so no request can follow.
    // A handshake_failure alert (OpenSSL 3.0 on Node 20 names it SSLV3_..., 3.5 on Node 26 SSL/TLS_...).
    expect(await refusal(p.server.https.port, { ca: p.ca })).toMatch(/^ERR_SSL_SSL(V3|\/TLS)_ALERT_HANDSHAKE_FAILURE$/);
    const redirect = await httpRequest(p.server.http.port, 'other.test', '/p');
    expect(redirect.status).toBe(308);
  });
});
