import http2 from 'node:http2';
import { describe, expect, it } from 'vitest';
import { managed, table } from '../support/fixtures.js';
import { finalResponses, rawHttps, responses } from '../support/raw-http.js';

const resources = managed();

const ANSWER =
  'HTTP/1.1 103 Early Hints\r\nlink: </a.css>; rel=preload\r\n\r\n' +
  'HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\ntrailer: x-sum\r\n\r\n2\r\nok\r\n0\r\nx-sum: 42\r\ncontent-length: 9\r\n\r\n';

describe('trailers and interim responses', () => {
  it('relays request trailers and TE: trailers upstream, and 103 and response trailers back, on HTTP/1.1', async () => {
    const u = await resources.rawUpstream((_request, socket) => socket.write(ANSWER));
    const p = await resources.proxy(table([{ name: 'app', hosts: ['app.test'], upstreams: [u.origin] }]));
    const got = await rawHttps(
      p,
      'app.test',
      'POST /t HTTP/1.1\r\nHost: app.test\r\nTE: gzip, trailers\r\nConnection: TE\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\nx-check: abc\r\n\r\n',
      finalResponses(1),
    );
    const sent = u.requests[0]!;
    expect(sent).toMatch(/\r\nte: trailers\r\nconnection: te\r\n/);
    expect(sent).not.toMatch(/gzip/);
    expect(sent.endsWith('\r\n\r\n5\r\nhello\r\n0\r\nx-check: abc\r\n\r\n')).toBe(true);
    const [hints, final] = responses(got);
    expect(hints).toBe('HTTP/1.1 103 Early Hints\r\nlink: </a.css>; rel=preload\r\n\r\n');
    expect(final).toMatch(/^HTTP\/1\.1 200 OK\r\n/);
    expect(final!.toLowerCase()).toContain('\r\ntrailer: x-sum\r\n');
    // The trailer section carries x-sum; a framing field there is not passed on.
    expect(final!.endsWith('\r\n2\r\nok\r\n0\r\nx-sum: 42\r\n\r\n')).toBe(true);
  });

  it('relays the same on HTTP/2, and strips Content-Length from a 204', async () => {
    const u = await resources.rawUpstream((request, socket) =>
      socket.write(request.startsWith('GET /204') ? 'HTTP/1.1 204 No Content\r\ncontent-length: 0\r\n\r\n' : ANSWER),
    );
    const p = await resources.proxy(table([{ name: 'app', hosts: ['app.test'], upstreams: [u.origin] }]));
    const session = http2.connect(`https://127.0.0.1:${p.server.https.port}`, { ca: p.ca, servername: 'app.test' });
    resources.defer(async () => void session.close());
    const stream = session.request({ ':method': 'POST', ':path': '/t', ':authority': 'app.test', te: 'trailers' }, { waitForTrailers: true });
    stream.on('wantTrailers', () => stream.sendTrailers({ 'x-check': 'abc' }));
    stream.end('hello');
    const interim: http2.IncomingHttpHeaders[] = [];
    stream.on('headers', (h) => interim.push(h));
    const [head, trailers, body] = await new Promise<[http2.IncomingHttpHeaders, http2.IncomingHttpHeaders, string]>((resolve, reject) => {
      let h: http2.IncomingHttpHeaders = {};
      let t: http2.IncomingHttpHeaders = {};
      let b = '';
      stream.on('response', (x) => (h = x));
      stream.on('trailers', (x) => (t = x));
      stream.on('data', (c: Buffer) => (b += c.toString()));
      stream.on('end', () => resolve([h, t, b]));
      stream.on('error', reject);
    });
    expect(interim.map((h) => [h[':status'], h.link])).toEqual([[103, '</a.css>; rel=preload']]);
    expect(head[':status']).toBe(200);
    expect(body).toBe('ok');
    expect(trailers['x-sum']).toBe('42');
    expect(trailers['content-length']).toBeUndefined();
    const sent = u.requests[0]!;
    expect(sent).toMatch(/\r\nte: trailers\r\n/);
    expect(sent.endsWith('\r\n\r\n5\r\nhello\r\n0\r\nx-check: abc\r\n\r\n')).toBe(true);

    const empty = session.request({ ':method': 'GET', ':path': '/204', ':authority': 'app.test' });
    const emptyHead = await new Promise<http2.IncomingHttpHeaders>((resolve, reject) => {
      empty.on('response', resolve);
      empty.on('error', reject);
    });
    await new Promise((resolve) => empty.on('close', resolve).resume());
    expect(emptyHead[':status']).toBe(204);
    expect(emptyHead['content-length']).toBeUndefined();
    expect(empty.rstCode).toBe(http2.constants.NGHTTP2_NO_ERROR);
  });
});
