// Request header handling at the edges (issue 16 point 9), with exact bytes and what the upstream got:
// the header count limit (431, never a silently truncated head), HTTP/2 cookie fields joined for the
// HTTP/1.1 upstream, a WebSocket upgrade that announces content, and transfer codings besides chunked.
// The framing stays as strict as Node's parser makes it: the classic smuggling shapes get 400.
import http2 from 'node:http2';
import { describe, expect, it } from 'vitest';
import { managed, table } from '../support/fixtures.js';
import { finalResponses, rawHttps } from '../support/raw-http.js';

const resources = managed();
const OK = 'HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok';
const UPGRADE = 'Connection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n';

async function site(answer = OK) {
  const u = await resources.rawUpstream((_request, socket) => socket.write(answer));
  const p = await resources.proxy(table([{ name: 'app', hosts: ['app.test'], upstreams: [u.origin] }]));
  return { u, p };
}

/** `count` header lines `x-<i>: <i>`, the first `count` of a request's fields besides those the test adds. */
const fields = (count: number): string => Array.from({ length: count }, (_, i) => `x-${i}: ${i}\r\n`).join('');
const statusLine = (received: string): string => received.split('\r\n')[0]!;

describe('request header handling', () => {
  it('answers 431 to a request with more than 1000 header fields instead of forwarding it without the ones Node dropped', async () => {
    const { u, p } = await site();
    // Host, 999 more, then the Content-Length the body depends on: field 1001.
    const over = await rawHttps(p, 'app.test', `POST /over HTTP/1.1\r\nHost: app.test\r\n${fields(999)}Content-Length: 4\r\n\r\nbody`, finalResponses(1));
    expect(statusLine(over)).toBe('HTTP/1.1 431 Request Header Fields Too Large');
    const upgrade = await rawHttps(p, 'app.test', `GET /ws HTTP/1.1\r\nHost: app.test\r\n${UPGRADE}${fields(996)}\r\n`, finalResponses(1));
    expect(statusLine(upgrade)).toBe('HTTP/1.1 431 Request Header Fields Too Large');
    expect(u.requests).toEqual([]);

    // Exactly 1000: all of them go on, the last one (the body's length) included.
    const at = await rawHttps(p, 'app.test', `POST /at HTTP/1.1\r\nHost: app.test\r\n${fields(998)}Content-Length: 4\r\n\r\nbody`, finalResponses(1));
    expect(statusLine(at)).toBe('HTTP/1.1 200 OK');
    const sent = u.requests[0]!;
    expect(sent).toContain('\r\nx-997: 997\r\nContent-Length: 4\r\n');
    expect(sent.endsWith('\r\n\r\nbody')).toBe(true);
  });

  it('joins cookie fields into one Cookie with "; " for the HTTP/1.1 upstream (HTTP/2 sends one field per cookie)', async () => {
    const { u, p } = await site();
    const session = http2.connect(`https://127.0.0.1:${p.server.https.port}`, { ca: p.ca, servername: 'app.test' });
    resources.defer(async () => void session.close());
    const stream = session.request({ ':method': 'GET', ':path': '/c', ':authority': 'app.test', cookie: ['a=1', 'b=2'], 'x-after': '1' });
    stream.resume();
    const status = await new Promise((resolve, reject) => {
      stream.on('response', (h) => resolve(h[':status']));
      stream.on('error', reject);
    });
    expect(status).toBe(200);
    // Two Cookie lines of an HTTP/1.1 client are joined the same way (Node's own server does so for apps).
    await rawHttps(p, 'app.test', 'GET /c1 HTTP/1.1\r\nHost: app.test\r\nCookie: a=1\r\nX-Between: 1\r\nCookie: b=2\r\n\r\n', finalResponses(1));
    expect(u.requests.map((r) => r.match(/\r\ncookie: [^\r]*/gi))).toEqual([['\r\ncookie: a=1; b=2'], ['\r\nCookie: a=1; b=2']]);
  });

  it('refuses with 400 a WebSocket upgrade that announces content, and sends one with Content-Length: 0 on', async () => {
    const { u, p } = await site('HTTP/1.1 403 Forbidden\r\ncontent-length: 0\r\n\r\n');
    for (const framing of ['Content-Length: 5\r\n\r\nhello', 'Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n']) {
      const got = await rawHttps(p, 'app.test', `GET /ws HTTP/1.1\r\nHost: app.test\r\n${UPGRADE}${framing}`, finalResponses(1));
      expect(statusLine(got), framing).toBe('HTTP/1.1 400 Bad Request');
      expect(got).toContain('carries no content');
    }
    expect(u.requests).toEqual([]);
    const empty = await rawHttps(p, 'app.test', `GET /ws HTTP/1.1\r\nHost: app.test\r\n${UPGRADE}Content-Length: 0\r\n\r\n`, finalResponses(1));
    expect(statusLine(empty)).toBe('HTTP/1.1 403 Forbidden');
    expect(u.requests).toHaveLength(1);
    expect(u.requests[0]).toMatch(/^GET \/ws HTTP\/1\.1\r\n[^]*\r\nupgrade: websocket\r\n/i);
  });

  it('answers 501 to a transfer coding besides chunked, 400 to a list not ending in chunked, and passes chunked in any case', async () => {
    const { u, p } = await site();
    const answers: Record<string, string> = {};
    for (const coding of ['gzip, chunked', 'identity, chunked', 'chunked, gzip', 'chunked, chunked']) {
      const got = await rawHttps(p, 'app.test', `POST /t HTTP/1.1\r\nHost: app.test\r\nTransfer-Encoding: ${coding}\r\n\r\n2\r\nab\r\n0\r\n\r\n`, finalResponses(1));
      answers[coding] = statusLine(got);
    }
    expect(answers).toEqual({
      'gzip, chunked': 'HTTP/1.1 501 Not Implemented',
      'identity, chunked': 'HTTP/1.1 501 Not Implemented',
      // No length at all (RFC 9112 6.3), and chunked twice (RFC 9112 6.1, refused by Node's parser).
      'chunked, gzip': 'HTTP/1.1 400 Bad Request',
      'chunked, chunked': 'HTTP/1.1 400 Bad Request',
    });
    expect(u.requests).toEqual([]);
    const chunked = await rawHttps(p, 'app.test', 'POST /t HTTP/1.1\r\nHost: app.test\r\nTransfer-Encoding: Chunked\r\n\r\n2\r\nab\r\n0\r\n\r\n', finalResponses(1));
    expect(statusLine(chunked)).toBe('HTTP/1.1 200 OK');
    expect(u.requests[0]!.endsWith('\r\ntransfer-encoding: chunked\r\n\r\n2\r\nab\r\n0\r\n\r\n')).toBe(true);
  });

  it('keeps the framing strict: the classic smuggling shapes get 400 and reach no upstream', async () => {
    const { u, p } = await site();
    const shapes = [
      'Content-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n',
      'Content-Length: 4\r\nContent-Length: 5\r\n\r\nbodyX',
      'Transfer-Encoding : chunked\r\n\r\n0\r\n\r\n',
      'Transfer-Encoding: chunked\r\n\r\n5;\x00\r\nhello\r\n0\r\n\r\n',
      'Transfer-Encoding: gzip\r\n\r\nab',
      'Transfer-Encoding: chunked\r\n\r\n2\nab\r\n0\r\n\r\n',
      'Content-Length: +4\r\n\r\nbody',
    ];
    for (const shape of shapes) {
      const got = await rawHttps(p, 'app.test', `POST /s HTTP/1.1\r\nHost: app.test\r\n${shape}`, finalResponses(1));
      expect(statusLine(got), JSON.stringify(shape)).toBe('HTTP/1.1 400 Bad Request');
    }
    expect(u.requests).toEqual([]);
  });
});
