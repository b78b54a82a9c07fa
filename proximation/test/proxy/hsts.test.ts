import type http from 'node:http';
import { describe, expect, it } from 'vitest';
import { setSiteHsts } from '@proximation/shared';
import { refusingOrigin } from '../../../shared/test/helpers.js';
import { h2Request, httpRequest, httpsRequest, managed, table, type Proxy } from '../support/fixtures.js';

const resources = managed();
const STS = 'strict-transport-security';

/** An upstream answering 200 "ok", with `headers`. */
const answering = (headers: http.OutgoingHttpHeaders): http.RequestListener => (_req, res) => {
  res.writeHead(200, { 'content-type': 'text/plain', ...headers });
  res.end('ok');
};

/**
 * One proxy with a site for each case: HSTS on (secure, overridden: its app sends its own header; idle:
 * no active version; down: upstream refuses; slow: upstream never answers) and off (appset: its app
 * sends a header; none).
 */
async function proxyWithSites(): Promise<Proxy> {
  const plain = await resources.upstream(answering({}));
  const ownHeader = await resources.upstream(answering({ [STS]: 'max-age=5; includeSubDomains' }));
  const silent = await resources.upstream(() => {
    /* never answers */
  });
  let routes = table([
    { name: 'secure', hosts: ['secure.test', 'www.secure.test'], upstreams: [plain.origin] },
    { name: 'overridden', hosts: ['overridden.test'], upstreams: [ownHeader.origin] },
    { name: 'idle', hosts: ['idle.test'] },
    { name: 'down', hosts: ['down.test'], upstreams: [await refusingOrigin()] },
    { name: 'slow', hosts: ['slow.test'], upstreams: [silent.origin] },
    { name: 'appset', hosts: ['appset.test'], upstreams: [ownHeader.origin] },
    { name: 'none', hosts: ['none.test'], upstreams: [plain.origin] },
  ]);
  routes = setSiteHsts(routes, 'secure', { maxAge: 31_536_000, includeSubDomains: true });
  for (const site of ['overridden', 'idle', 'down', 'slow']) routes = setSiteHsts(routes, site, { maxAge: 60 });
  // Long enough that down.test's refused connection is handled before the upstream timeout even on a
  // loaded machine (with 300 ms, an event loop busy that long ran the timer first: 504, not 502).
  return resources.proxy(routes, { upstreamTimeoutMs: '1500ms' });
}

describe('HSTS', () => {
  it('adds the site\'s header to its proxied responses over HTTP/1.1 and HTTP/2, for each of its hosts', async () => {
    const p = await proxyWithSites();
    for (const host of ['secure.test', 'www.secure.test']) {
      const res = await httpsRequest(p, host);
      expect(res.status).toBe(200);
      expect(res.headers[STS]).toBe('max-age=31536000; includeSubDomains');
    }
    const h2 = await h2Request(p, 'secure.test');
    expect(h2).toMatchObject({ status: 200, alpn: 'h2' });
    expect(h2.headers[STS]).toBe('max-age=31536000; includeSubDomains');
  });

  it('replaces the upstream\'s header on a site with HSTS, and passes it through on a site without', async () => {
    const p = await proxyWithSites();
    const replaced = await httpsRequest(p, 'overridden.test');
    expect(replaced.headers[STS]).toBe('max-age=60');
    expect((await h2Request(p, 'overridden.test')).headers[STS]).toBe('max-age=60');
    expect((await httpsRequest(p, 'appset.test')).headers[STS]).toBe('max-age=5; includeSubDomains');
  });

  it('adds it to the proxy\'s own 503, 502 and 504 for the site', async () => {
    const p = await proxyWithSites();
    for (const [host, status] of [['idle.test', 503], ['down.test', 502], ['slow.test', 504]] as const) {
      const res = await httpsRequest(p, host);
      expect(res.status).toBe(status);
      expect(res.headers[STS]).toBe('max-age=60');
    }
    const h2 = await h2Request(p, 'down.test');
    expect(h2.status).toBe(502);
    expect(h2.headers[STS]).toBe('max-age=60');
  });

  it('sends none for a site without HSTS, an unknown host, or on the plain-HTTP listener', async () => {
    const p = await proxyWithSites();
    expect((await httpsRequest(p, 'none.test')).headers).not.toHaveProperty(STS);
    const unknown = await httpsRequest(p, 'secure.test', { headers: { host: 'nobody.test' } });
    expect(unknown.status).toBe(404);
    expect(unknown.headers).not.toHaveProperty(STS);
    const redirect = await httpRequest(p.server.http.port, 'secure.test');
    expect(redirect.status).toBe(308);
    expect(redirect.headers).not.toHaveProperty(STS);
  });
});
