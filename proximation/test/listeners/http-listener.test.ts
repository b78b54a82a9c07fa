import net from 'node:net';
import { describe, expect, it } from 'vitest';
import { httpRequest, startProxy, table, type Proxy, managed } from '../support/fixtures.js';
import { within } from '../support/process.js';

const resources = managed();
const proxy = resources.proxy;

// The HTTP listener never forwards, so the upstream address only has to be valid, not reachable.
const routed = table([{ name: 'app', hosts: ['app.test'], upstreams: ['http://127.0.0.1:9'] }], 3);

describe('plain HTTP listener', () => {
  it('redirects a routed host to HTTPS on the public port with 308, path and query kept', async () => {
    const p = await proxy(routed, { publicHttpsPort: '8443' });
    const res = await httpRequest(p.server.http.port, 'app.test', '/a/b?x=1&y=%20z');
    expect(res.status).toBe(308);
    expect(res.headers.location).toBe('https://app.test:8443/a/b?x=1&y=%20z');
    expect(res.body).toBe('');

    // The port of the HTTP Host header is not the HTTPS port; letter case and trailing dot are normalised.
    const withPort = await httpRequest(p.server.http.port, 'App.Test.:8080', '/');
    expect(withPort.status).toBe(308);
    expect(withPort.headers.location).toBe('https://app.test:8443/');
  });

  it('leaves the port out of the redirect when the public HTTPS port is 443', async () => {
    const p = await proxy(routed, { publicHttpsPort: '443' });
    const res = await httpRequest(p.server.http.port, 'app.test', '/login?next=%2Fhome');
    expect(res.status).toBe(308);
    expect(res.headers.location).toBe('https://app.test/login?next=%2Fhome');
  });

  it('answers 404 for a host it does not route instead of redirecting', async () => {
    const p = await proxy(routed);
    const res = await httpRequest(p.server.http.port, 'other.test', '/x');
    expect(res.status).toBe(404);
    expect(res.headers.location).toBeUndefined();
    expect(res.body).toContain('No site is configured for host "other.test"');
  });

  it('answers an ACME challenge request with 404 and a clear message when no challenge is pending', async () => {
    const p = await proxy(routed);
    // Challenges are answered before routing, for routed and unrouted hosts alike, and never redirected.
    for (const host of ['app.test', 'other.test']) {
      const res = await httpRequest(p.server.http.port, host, '/.well-known/acme-challenge/some-token_123');
      expect(res.status).toBe(404);
      expect(res.headers.location).toBeUndefined();
      expect(res.body).toContain('no ACME challenge is pending for this token');
    }
  });

  it('gives up on a client that does not finish its headers within headersTimeoutMs', async () => {
    // A slowloris client: never idle (a byte every 100 ms), so only the headers timeout can end it.
    const p = await proxy(routed, { headersTimeoutMs: '500ms', idleTimeoutMs: '30s' });
    const socket = net.connect(p.server.http.port, '127.0.0.1');
    resources.defer(async () => void socket.destroy());
    socket.on('error', () => {});
    let received = '';
    socket.on('data', (c: Buffer) => (received += c.toString('latin1')));
    await new Promise((resolve) => socket.once('connect', resolve));
    const started = Date.now();
    socket.write('GET / HTTP/1.1\r\nhost: app.test\r\nx-slow: ');
    const trickle = setInterval(() => socket.writable && socket.write('a'), 100);
    resources.defer(async () => clearInterval(trickle));
    const closed = new Promise<number>((resolve) => socket.once('close', () => resolve(Date.now())));
    const closedAt = await within(closed, 3000, 'the server ending a request whose headers never finish (headersTimeoutMs 500 ms)');
    clearInterval(trickle);
    expect(closedAt - started).toBeGreaterThanOrEqual(450);
    if (received !== '') expect(received).toMatch(/^HTTP\/1\.1 408 /);
  });

  it('closes a keep-alive connection idle past idleTimeoutMs after its answer', async () => {
    const p = await proxy(routed, { idleTimeoutMs: '500ms' });
    const socket = net.connect(p.server.http.port, '127.0.0.1');
    resources.defer(async () => void socket.destroy());
    socket.on('error', () => {});
    let received = '';
    const answered = new Promise<number>((resolve) => socket.on('data', (c: Buffer) => (received += c.toString('latin1')).endsWith('\r\n\r\n') && resolve(Date.now())));
    const closed = new Promise<number>((resolve) => socket.once('close', () => resolve(Date.now())));
    socket.write('GET /x HTTP/1.1\r\nhost: app.test\r\n\r\n');
    const answeredAt = await within(answered, 3000, 'the 308');
    expect(received).toMatch(/^HTTP\/1\.1 308 /);
    expect(received.toLowerCase()).toContain('connection: keep-alive');
    const closedAt = await within(closed, 5000, 'the server closing the idle keep-alive connection (idleTimeoutMs 500 ms)');
    expect(closedAt - answeredAt).toBeGreaterThanOrEqual(400);
  });
});

describe('admin listener', () => {
  it('answers GET /healthz with 200 and JSON naming the status and the routing table generation', async () => {
    const p = await proxy(routed);
    const res = await httpRequest(p.server.admin.port, 'localhost', '/healthz');
    expect(res.status).toBe(200);
    expect(res.headers['content-type']).toBe('application/json');
    expect(res.headers['cache-control']).toBe('no-store');
    expect(JSON.parse(res.body)).toEqual({ status: 'ok', routesGeneration: 3 });
  });

  it('answers 404 for an unknown admin path and points to /healthz', async () => {
    const p = await proxy(routed);
    const res = await httpRequest(p.server.admin.port, 'localhost', '/metrics-nope');
    expect(res.status).toBe(404);
    expect(res.body).toContain('/metrics-nope');
    expect(res.body).toContain('/healthz');
  });
});
