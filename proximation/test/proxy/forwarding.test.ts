import http from 'node:http';
import http2 from 'node:http2';
import net from 'node:net';
import tls from 'node:tls';
import { describe, expect, it } from 'vitest';
import { echoHandler, h2Request, httpsRequest, startProxy, startUpstream, table, type Proxy, type Upstream, managed } from '../support/fixtures.js';

const resources = managed();
const proxy = resources.proxy;
const upstream = resources.upstream;

describe('forwarding over HTTPS', () => {
  it('serves HTTP/1.1 and HTTP/2 with a certificate from the local CA, Host preserved', async () => {
    const u = await upstream(echoHandler());
    const p = await proxy(table([{ name: 'app', hosts: ['app.test'], upstreams: [u.origin] }]));

    const h1 = await httpsRequest(p, 'app.test', { path: '/hello?x=1' });
    expect(h1.status).toBe(200);
    const seen = JSON.parse(h1.body);
    expect(seen.url).toBe('/hello?x=1');
    expect(seen.headers.host).toBe('app.test');
    expect(h1.headers['x-upstream']).toBe('echo');

    const h2 = await h2Request(p, 'app.test', '/two');
    expect(h2.alpn).toBe('h2');
    expect(h2.status).toBe(200);
    const seen2 = JSON.parse(h2.body);
    expect(seen2.url).toBe('/two');
    expect(seen2.headers.host).toBe('app.test');
    expect(seen2.headers['x-forwarded-proto']).toBe('https');
  });

  it('streams a request body upstream and logs one access line', async () => {
    const u = await upstream(echoHandler());
    const p = await proxy(table([{ name: 'app', hosts: ['app.test'], upstreams: [u.origin], version: 'v7' }]));
    const res = await httpsRequest(p, 'app.test', { method: 'POST', path: '/up', body: 'payload', headers: { 'content-type': 'text/plain' } });
    expect(JSON.parse(res.body).body).toBe('payload');
    const line = await p.waitForLog((l) => l.part === 'access' && l.path === '/up');
    expect(line).toMatchObject({ method: 'POST', host: 'app.test', status: 200, site: 'app', version: 'v7', upstream: u.origin });
    expect(line.bytes).toBe(Buffer.byteLength(res.body));
    expect(typeof line.durationMs).toBe('number');
  });

  it("logs the bytes of the proxy's own pages and one form of an IPv4 client's address, on a dual-stack listener", async () => {
    const u = await upstream(echoHandler());
    const closed = await upstream(echoHandler());
    await closed.close();
    const p = await proxy(
      table([
        { name: 'app', hosts: ['app.test'], upstreams: [u.origin] },
        { name: 'idle', hosts: ['idle.test'] },
        { name: 'gone', hosts: ['gone.test'], upstreams: [closed.origin] },
      ]),
      { listenAddress: '::' },
    );
    const answers = {
      '/ok': await httpsRequest(p, 'app.test', { path: '/ok' }),
      // SNI app.test, Host of no site: the 404 page.
      '/unknown': await httpsRequest(p, 'app.test', { path: '/unknown', headers: { host: 'nowhere.test' } }),
      '/idle': await httpsRequest(p, 'idle.test', { path: '/idle' }),
      '/gone': await httpsRequest(p, 'gone.test', { path: '/gone' }),
    };
    expect(Object.values(answers).map((a) => a.status)).toEqual([200, 404, 503, 502]);
    for (const [path, answer] of Object.entries(answers)) {
      const line = await p.waitForLog((l) => l.part === 'access' && l.path === path);
      expect(line, path).toMatchObject({ client: '127.0.0.1', bytes: Buffer.byteLength(answer.body) });
      expect(Buffer.byteLength(answer.body)).toBeGreaterThan(0);
    }
  });

  it('drops client X-Forwarded-* from an untrusted peer and keeps them from a trusted one', async () => {
    const u = await upstream(echoHandler());
    const spoofed = { 'x-forwarded-for': '6.6.6.6', 'x-forwarded-proto': 'http', 'x-forwarded-host': 'evil.test', forwarded: 'for=6.6.6.6' };

    const untrusted = await proxy(table([{ name: 'app', hosts: ['app.test'], upstreams: [u.origin] }]));
    const a = JSON.parse((await httpsRequest(untrusted, 'app.test', { headers: spoofed })).body);
    expect(a.headers['x-forwarded-for']).toBe('127.0.0.1');
    expect(a.headers['x-forwarded-proto']).toBe('https');
    expect(a.headers['x-forwarded-host']).toBe('app.test');
    expect(a.headers.forwarded).toBeUndefined();

    const trusted = await proxy(table([{ name: 'app', hosts: ['app.test'], upstreams: [u.origin] }]), { trustedProxies: '127.0.0.0/8' });
    const b = JSON.parse((await httpsRequest(trusted, 'app.test', { headers: spoofed })).body);
    expect(b.headers['x-forwarded-for']).toBe('6.6.6.6, 127.0.0.1');
    expect(b.headers['x-forwarded-proto']).toBe('http');
    expect(b.headers['x-forwarded-host']).toBe('evil.test');
    expect(b.headers.forwarded).toBe('for=6.6.6.6');
  });

  it('never passes on a client identity header from an untrusted peer, and sets X-Real-IP to the client address', async () => {
    const u = await upstream(echoHandler());
    const identity = {
      'x-real-ip': '6.6.6.1',
      'x-forwarded-port': '8443',
      'x-forwarded-prefix': '/admin',
      'x-client-ip': '6.6.6.2',
      'true-client-ip': '6.6.6.3',
      'cf-connecting-ip': '6.6.6.4',
      // CGI-style servers read these as HTTP_X_REAL_IP and HTTP_X_FORWARDED_FOR.
      x_real_ip: '6.6.6.5',
      x_forwarded_for: '6.6.6.6',
    };
    const names = Object.keys(identity);

    const untrusted = await proxy(table([{ name: 'app', hosts: ['app.test'], upstreams: [u.origin] }]));
    const a = JSON.parse((await httpsRequest(untrusted, 'app.test', { headers: identity })).body) as { headers: Record<string, string> };
    expect(names.filter((n) => n !== 'x-real-ip' && a.headers[n] !== undefined), 'identity headers that reached the upstream').toEqual([]);
    expect(a.headers['x-real-ip']).toBe('127.0.0.1');

    const trusted = await proxy(table([{ name: 'app', hosts: ['app.test'], upstreams: [u.origin] }]), { trustedProxies: '127.0.0.0/8' });
    const b = JSON.parse((await httpsRequest(trusted, 'app.test', { headers: { ...identity, 'x-forwarded-for': '203.0.113.9' } })).body) as { headers: Record<string, string> };
    expect(b.headers).toMatchObject({ 'x-forwarded-port': '8443', 'x-forwarded-prefix': '/admin', 'x-client-ip': '6.6.6.2', 'true-client-ip': '6.6.6.3', 'cf-connecting-ip': '6.6.6.4' });
    // A load balancer passes a client's own X-Real-IP through: it is the chain's client instead.
    expect(b.headers['x-real-ip']).toBe('203.0.113.9');
    expect([b.headers.x_real_ip, b.headers.x_forwarded_for]).toEqual([undefined, undefined]);
  });

  it('removes hop-by-hop headers in both directions', async () => {
    const u = await upstream((req, res) => {
      res.setHeader('x-secret-hop', 'no');
      res.setHeader('connection', 'x-secret-hop');
      res.setHeader('keep-alive', 'timeout=5');
      res.end(JSON.stringify(req.headers));
    });
    const p = await proxy(table([{ name: 'app', hosts: ['app.test'], upstreams: [u.origin] }]));
    const res = await httpsRequest(p, 'app.test', { headers: { connection: 'x-drop-me', 'x-drop-me': '1', 'x-keep': '1', te: 'gzip', 'proxy-authorization': 'x' } });
    const seen = JSON.parse(res.body);
    expect(seen['x-drop-me']).toBeUndefined();
    // Only `TE: trailers` goes on (trailers.test.ts): the proxy decodes no transfer coding.
    expect(seen.te).toBeUndefined();
    expect(seen['proxy-authorization']).toBeUndefined();
    expect(seen['x-keep']).toBe('1');
    expect(res.headers['x-secret-hop']).toBeUndefined();
    // The proxy announces its own keep-alive timeout to the client, never the upstream's.
    expect(res.headers['keep-alive']).not.toBe('timeout=5');
  });

  it('answers 404 for an unknown host without reaching any upstream, and 503 for a site with no version', async () => {
    let hits = 0;
    const u = await upstream((_req, res) => {
      hits++;
      res.end();
    });
    const p = await proxy(table([{ name: 'app', hosts: ['app.test'], upstreams: [u.origin] }, { name: 'empty', hosts: ['empty.test'] }]));
    // SNI names a served host, Host names another: routing goes by Host.
    const res = await httpsRequest(p, 'app.test', { headers: { host: 'other.test' } });
    expect(res.status).toBe(404);
    expect(res.body).toContain('No site is configured for host "other.test"');
    const empty = await httpsRequest(p, 'empty.test');
    expect(empty.status).toBe(503);
    expect(empty.body).toContain('Site "empty" has no active version');
    expect(hits).toBe(0);
  });

  it('refuses the TLS handshake for a name it does not route', async () => {
    const p = await proxy(table([]));
    const err = await new Promise<Error>((resolve) => {
      const socket = tls.connect({ host: '127.0.0.1', port: p.server.https.port, servername: 'nobody.test', ca: p.ca });
      socket.on('error', resolve);
      socket.on('secureConnect', () => resolve(new Error('handshake unexpectedly succeeded')));
    });
    expect(err.message).not.toContain('unexpectedly');
  });

  it('answers 502 when the upstream refuses connections', async () => {
    const closed = await new Promise<number>((resolve) => {
      const s = net.createServer().listen(0, '127.0.0.1', () => {
        const { port } = s.address() as net.AddressInfo;
        s.close(() => resolve(port));
      });
    });
    const p = await proxy(table([{ name: 'app', hosts: ['app.test'], upstreams: [`http://127.0.0.1:${closed}`] }]));
    const res = await httpsRequest(p, 'app.test');
    expect(res.status).toBe(502);
    expect(res.body).toContain(`127.0.0.1:${closed}`);
  });

  it('answers 504 when the upstream does not answer in time', async () => {
    const u = await upstream(() => {
      /* never answers */
    });
    const p = await proxy(table([{ name: 'app', hosts: ['app.test'], upstreams: [u.origin] }]), { upstreamTimeoutMs: '300ms' });
    const res = await httpsRequest(p, 'app.test');
    expect(res.status).toBe(504);
  });

  it('cancels the upstream request when the client goes away', async () => {
    let upstreamClosed!: () => void;
    const closedUpstream = new Promise<void>((resolve) => (upstreamClosed = resolve));
    let started!: () => void;
    const requestArrived = new Promise<void>((resolve) => (started = resolve));
    const u = await upstream((_req, res) => {
      res.writeHead(200);
      res.write('first part');
      res.on('close', upstreamClosed);
      started();
    });
    const p = await proxy(table([{ name: 'app', hosts: ['app.test'], upstreams: [u.origin] }]));
    const socket = tls.connect({ host: '127.0.0.1', port: p.server.https.port, servername: 'app.test', ca: p.ca, ALPNProtocols: ['http/1.1'] });
    socket.write('GET /slow HTTP/1.1\r\nhost: app.test\r\n\r\n');
    await requestArrived;
    socket.destroy();
    await closedUpstream;
    const line = await p.waitForLog((l) => l.part === 'access' && l.path === '/slow');
    expect(line.status).toBe(0);
  });

  it('aborts the upstream request when the client goes away in the middle of an upload, on HTTP/1.1 and HTTP/2, and keeps serving', async () => {
    let arrived!: () => void;
    let aborted!: () => void;
    const upstreamAborts: Promise<void>[] = [];
    const u = await upstream((req, res) => {
      if (req.method === 'GET') {
        res.end('still here');
        return;
      }
      upstreamAborts.push(new Promise((resolve) => (aborted = resolve)));
      req.once('data', () => arrived());
      req.on('close', () => {
        if (!req.complete) aborted();
      });
      req.resume();
    });
    const p = await proxy(table([{ name: 'app', hosts: ['app.test'], upstreams: [u.origin] }]));
    const port = p.server.https.port;

    const firstPart = new Promise<void>((resolve) => (arrived = resolve));
    const socket = tls.connect({ host: '127.0.0.1', port, servername: 'app.test', ca: p.ca, ALPNProtocols: ['http/1.1'] });
    socket.write(`POST /up HTTP/1.1\r\nhost: app.test\r\ncontent-length: 1048576\r\n\r\n${'x'.repeat(1024)}`);
    await firstPart;
    socket.destroy();
    await upstreamAborts[0];

    const secondPart = new Promise<void>((resolve) => (arrived = resolve));
    const session = http2.connect(`https://127.0.0.1:${port}`, { ca: p.ca, servername: 'app.test' });
    const stream = session.request({ ':method': 'POST', ':path': '/up', ':authority': 'app.test' }, { endStream: false });
    stream.on('error', () => {});
    stream.write('x'.repeat(1024));
    await secondPart;
    // RST_STREAM before END_STREAM, as a browser aborting a fetch sends it (close() would end the stream first).
    stream.destroy();
    await upstreamAborts[1];
    session.close();

    const after = await httpsRequest(p, 'app.test');
    expect([after.status, after.body]).toEqual([200, 'still here']);
  });
});
