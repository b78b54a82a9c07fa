// Absolute-form request targets (RFC 9112 3.2.2), sent as exact bytes: the target's authority routes
// the request and the upstream gets origin-form with that Host.
import { describe, expect, it } from 'vitest';
import { httpRequest, managed, table } from '../support/fixtures.js';
import { finalResponses, rawHttps, responses } from '../support/raw-http.js';

const resources = managed();
const OK = 'HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok';

async function twoSites() {
  const other = await resources.rawUpstream((_request, socket) => socket.write(OK));
  const demo = await resources.rawUpstream((_request, socket) => socket.write(OK));
  const p = await resources.proxy(
    table([
      { name: 'other', hosts: ['other.test'], upstreams: [other.origin] },
      { name: 'demo', hosts: ['demo.test'], upstreams: [demo.origin] },
    ]),
  );
  return { other, demo, p };
}

/** The status line of the first final response in `received`. */
function statusOf(received: string): string {
  return responses(received).find((r) => !r.startsWith('HTTP/1.1 1'))!.split('\r\n')[0]!;
}

describe('absolute-form request targets', () => {
  it("route by the target's authority, not Host, and reach the upstream in origin-form with that Host", async () => {
    const { other, demo, p } = await twoSites();
    const got = await rawHttps(p, 'other.test', 'GET https://other.test/b?q=1 HTTP/1.1\r\nHost: demo.test\r\nX-Keep: 1\r\n\r\n', finalResponses(1));
    expect(statusOf(got)).toBe('HTTP/1.1 200 OK');
    expect(demo.requests).toEqual([]);
    const sent = other.requests[0]!;
    expect(sent.startsWith('GET /b?q=1 HTTP/1.1\r\nHost: other.test\r\nX-Keep: 1\r\n')).toBe(true);
    expect(sent.match(/\r\nhost:/gi)).toHaveLength(1);
    expect(sent).toContain('\r\nx-forwarded-host: other.test\r\n');
    const line = await p.waitForLog((l) => l.part === 'access' && l.path === '/b?q=1');
    expect(line).toMatchObject({ host: 'other.test', site: 'other', status: 200 });
  });

  it('send an empty path as "/", OPTIONS without a path as "*", and keep path bytes and case as sent', async () => {
    const { other, p } = await twoSites();
    await rawHttps(
      p,
      'other.test',
      'GET HTTPS://Other.Test:443?x=%41 HTTP/1.1\r\nHost: demo.test\r\n\r\n' +
        'OPTIONS https://other.test HTTP/1.1\r\nHost: demo.test\r\n\r\n' +
        'GET http://other.test/a/../B%2f?c HTTP/1.1\r\nHost: other.test\r\n\r\n',
      finalResponses(3),
    );
    expect(other.requests.map((r) => r.split('\r\n').slice(0, 2))).toEqual([
      ['GET /?x=%41 HTTP/1.1', 'Host: Other.Test:443'],
      ['OPTIONS * HTTP/1.1', 'Host: other.test'],
      ['GET /a/../B%2f?c HTTP/1.1', 'Host: other.test'],
    ]);
  });

  it('refuse other schemes, userinfo, an empty authority and a fragment with 400, and send nothing upstream', async () => {
    const { other, demo, p } = await twoSites();
    for (const target of ['ftp://other.test/x', 'https://user:pw@other.test/x', 'https:///x', 'other.test/x', 'https://other.test#frag']) {
      const got = await rawHttps(p, 'other.test', `GET ${target} HTTP/1.1\r\nHost: other.test\r\n\r\n`, finalResponses(1));
      expect(got.split('\r\n')[0], target).toBe('HTTP/1.1 400 Bad Request');
    }
    expect(other.requests).toEqual([]);
    expect(demo.requests).toEqual([]);
  });

  it("redirect by the target's authority on the plain-HTTP listener too, path and query kept", async () => {
    const { p } = await twoSites();
    const redirect = await httpRequest(p.server.http.port, 'demo.test', 'http://other.test/b?q=1');
    expect(redirect.status).toBe(308);
    expect(redirect.headers.location).toBe(`https://other.test:${p.config.publicHttpsPort}/b?q=1`);
  });
});
