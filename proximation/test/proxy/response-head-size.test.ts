/**
 * PROXIMATION_MAX_RESPONSE_HEADER_SIZE bounds the head an upstream may send (502 above it, the reason in
 * the access log; for HTTP/2 upstreams the header list as RFC 9113 counts it), apart from the request limit PROXIMATION_MAX_HEADER_SIZE (431 above it).
 */
import { describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config.js';
import { startH2Upstream } from '../support/h2-upstream.js';
import { h2Request, managed, table } from '../support/fixtures.js';
import { finalResponses, rawHttps } from '../support/raw-http.js';

const resources = managed();

/** A 200 whose head is `size` bytes long, status line and empty line included. */
function responseOf(size: number): string {
  const start = 'HTTP/1.1 200 OK\r\ncontent-length: 2\r\nx-fill: ';
  return `${start}${'a'.repeat(size - start.length - 4)}\r\n\r\nok`;
}

describe('response head size', () => {
  it('relays a head up to the configured size and answers 502 above it, while requests keep their own 431 limit', async () => {
    const u = await resources.rawUpstream((request, socket) => socket.write(responseOf(Number(/^GET \/(\d+) /.exec(request)![1]))));
    const p = await resources.proxy(table([{ name: 'app', hosts: ['app.test'], upstreams: [u.origin] }]), {
      maxResponseHeaderSize: '40000',
      maxHeaderSize: '4096',
    });
    // Above the old fixed 16 KiB and at the limit: relayed whole.
    const fits = await rawHttps(p, 'app.test', 'GET /40000 HTTP/1.1\r\nHost: app.test\r\n\r\n', finalResponses(1));
    expect(fits).toMatch(/^HTTP\/1\.1 200 OK\r\n/);
    expect(fits).toContain(`x-fill: ${'a'.repeat(39_000)}`);
    expect(fits.endsWith('\r\n\r\nok')).toBe(true);

    const over = await rawHttps(p, 'app.test', 'GET /40001 HTTP/1.1\r\nHost: app.test\r\n\r\n', finalResponses(1));
    expect(over).toMatch(/^HTTP\/1\.1 502 Bad Gateway\r\n/);
    const line = await p.waitForLog((l) => l.part === 'access' && l.path === '/40001');
    expect(line).toMatchObject({ status: 502 });
    expect(String(line.error)).toMatch(/head is larger than 40000 bytes/);

    // The request limit is its own: a 5 KB request head gets 431 and never reaches the upstream.
    const seen = u.requests.length;
    const big = await rawHttps(p, 'app.test', `GET /100 HTTP/1.1\r\nHost: app.test\r\nx-fill: ${'b'.repeat(5000)}\r\n\r\n`, finalResponses(1));
    expect(big).toMatch(/^HTTP\/1\.1 431 /);
    expect(u.requests.length).toBe(seen);
    expect(u.requests.map((r) => r.split(' ')[1])).toEqual(['/40000', '/40001']);
  });

  it('bounds an HTTP/2 upstream\'s header list the same way', async () => {
    const u = await startH2Upstream((stream, headers) => {
      const size = Number(/^\/(\d+)$/.exec(String(headers[':path']))![1]);
      // The list as RFC 9113 counts it, 32 octets per field: ":status" "200", the "date" Node adds (its
      // value always 29 characters), and "x-fill" with its value.
      stream.respond({ ':status': 200, 'x-fill': 'a'.repeat(size - (7 + 3 + 32) - (4 + 29 + 32) - (6 + 32)) });
      stream.end('ok');
    });
    resources.defer(() => u.close());
    const p = await resources.proxy(table([{ name: 'app', hosts: ['app.test'], upstreams: [u.origin] }]), { maxResponseHeaderSize: '20000' });
    // An HTTP/2 client: Node's HTTP/1.1 client stops at 16 KiB itself.
    const fits = await h2Request(p, 'app.test', '/20000');
    expect(fits.status).toBe(200);
    expect(fits.headers['x-fill']).toHaveLength(20000 - 145);
    expect(fits.body).toBe('ok');
    expect((await h2Request(p, 'app.test', '/20001')).status).toBe(502);
    const line = await p.waitForLog((l) => l.part === 'access' && l.path === '/20001');
    expect(String(line.error)).toMatch(/head is larger than 20000 bytes/);
    expect(u.streams.map((s) => s.headers[':path'])).toEqual(['/20000', '/20001']);
  });

  it('keeps 16 KiB by default', async () => {
    const u = await resources.rawUpstream((request, socket) => socket.write(responseOf(Number(/^GET \/(\d+) /.exec(request)![1]))));
    const p = await resources.proxy(table([{ name: 'app', hosts: ['app.test'], upstreams: [u.origin] }]));
    expect(p.config.maxResponseHeaderSize).toBe(16_384);
    expect(await rawHttps(p, 'app.test', 'GET /16384 HTTP/1.1\r\nHost: app.test\r\n\r\n', finalResponses(1))).toMatch(/^HTTP\/1\.1 200 /);
    expect(await rawHttps(p, 'app.test', 'GET /16385 HTTP/1.1\r\nHost: app.test\r\n\r\n', finalResponses(1))).toMatch(/^HTTP\/1\.1 502 /);
  });

  it('takes bytes or binary units from 1 KiB to 1 MiB and refuses anything else, naming it', () => {
    for (const bad of ['0', '1023', '1048577', '16k', '-5', '1e4']) {
      expect(() => loadConfig({}, { PROXIMATION_MAX_RESPONSE_HEADER_SIZE: bad })).toThrow(
        `PROXIMATION_MAX_RESPONSE_HEADER_SIZE=${JSON.stringify(bad)} is not valid: expected a size from 1KiB to 1MiB (1024 to 1048576 bytes), such as 32KiB, or a number of bytes.`,
      );
    }
    expect(() => loadConfig({ 'max-response-header-size': '12' }, {})).toThrow(/--max-response-header-size="12" is not valid/);
    expect(loadConfig({}, { PROXIMATION_MAX_RESPONSE_HEADER_SIZE: '1048576' }).maxResponseHeaderSize).toBe(1_048_576);
    expect(loadConfig({}, { PROXIMATION_MAX_RESPONSE_HEADER_SIZE: '32KiB' }).maxResponseHeaderSize).toBe(32_768);
  });
});
