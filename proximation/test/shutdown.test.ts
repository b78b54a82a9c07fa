import http2 from 'node:http2';
import net from 'node:net';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { httpRequest, httpsRequest, startProxy, startUpstream, table, tempDir, writeRoutes, type Proxy, type Upstream, managed } from './support/fixtures.js';
import { startServeProcess, waitUntil, within } from './support/process.js';

const resources = managed();
const proxy = resources.proxy;

/** Large enough to span many TLS records and HTTP/2 frames, so a cut-off body would show. */
const BODY = 'slow body '.repeat(20_000);

/** An upstream that answers `delayMs` after each request arrives (never, when undefined). */
async function slowUpstream(delayMs: number | undefined): Promise<Upstream & { received: Promise<void> }> {
  let arrived!: () => void;
  const received = new Promise<void>((resolve) => (arrived = resolve));
  const u = await startUpstream((_req, res) => {
    arrived();
    if (delayMs === undefined) return;
    setTimeout(() => res.writeHead(200, { 'content-type': 'text/plain' }).end(BODY), delayMs);
  });
  resources.defer(() => u.close());
  return { ...u, received };
}

/** Resolves to true when a TCP connection to `port` is refused, false when it is accepted. */
function refused(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect(port, '127.0.0.1');
    s.once('connect', () => {
      s.destroy();
      resolve(false);
    });
    s.once('error', (err: NodeJS.ErrnoException) => resolve(err.code === 'ECONNREFUSED'));
  });
}

function tracked<T>(promise: Promise<T>): { promise: Promise<T>; settled(): boolean } {
  let settled = false;
  void promise.finally(() => (settled = true)).catch(() => {});
  return { promise, settled: () => settled };
}

describe('graceful shutdown', () => {
  it('lets an in-flight HTTP/1.1 request finish while health says 503 and new connections are refused', async () => {
    const u = await slowUpstream(300);
    const p = await proxy(table([{ name: 'app', hosts: ['app.test'], upstreams: [u.origin] }]));
    const response = httpsRequest(p, 'app.test', { path: '/slow' });
    await u.received;

    const closing = tracked(p.server.close());
    const health = await httpRequest(p.server.admin.port, 'localhost', '/healthz');
    expect(health.status).toBe(503);
    expect(JSON.parse(health.body)).toMatchObject({ status: 'draining' });
    // The listener stops accepting a moment after close() starts (there is no event to wait for).
    await waitUntil(() => refused(p.server.https.port), 'the HTTPS port to refuse new connections', 2000);
    expect(closing.settled(), 'close() resolved before the in-flight request was done').toBe(false);

    const res = await response;
    expect(res.status).toBe(200);
    expect(res.body).toBe(BODY);
    await closing.promise;
  });

  it('sends GOAWAY to an HTTP/2 client with a stream in flight and still completes that stream', async () => {
    const u = await slowUpstream(300);
    const p = await proxy(table([{ name: 'app', hosts: ['app.test'], upstreams: [u.origin] }]));
    const session = http2.connect(`https://127.0.0.1:${p.server.https.port}`, { ca: p.ca, servername: 'app.test' });
    resources.defer(async () => void session.destroy());
    session.on('error', () => {});
    const goaway = new Promise<void>((resolve) => session.once('goaway', () => resolve()));
    const stream = session.request({ ':path': '/slow', ':authority': 'app.test' });
    const response = new Promise<{ status: number; body: string }>((resolve, reject) => {
      let status = 0;
      const chunks: Buffer[] = [];
      stream.on('response', (h) => (status = Number(h[':status'])));
      stream.on('data', (c: Buffer) => chunks.push(c));
      stream.on('end', () => resolve({ status, body: Buffer.concat(chunks).toString() }));
      stream.on('error', reject);
    });
    await u.received;

    const closing = tracked(p.server.close());
    await within(goaway, 2000, 'GOAWAY from the draining proxy');
    expect(closing.settled()).toBe(false);
    const res = await response;
    expect(res.status).toBe(200);
    expect(res.body).toBe(BODY);
    await closing.promise;
  });

  it('cuts a request that never finishes at the drain deadline, and close() resolves', async () => {
    const u = await slowUpstream(undefined);
    const p = await proxy(table([{ name: 'app', hosts: ['app.test'], upstreams: [u.origin] }]), { drainTimeoutMs: '300ms' });
    const response = httpsRequest(p, 'app.test', { path: '/never' }).then(
      (res) => ({ res }),
      (err: Error) => ({ err }),
    );
    await u.received;

    const started = Date.now();
    await p.server.close();
    const took = Date.now() - started;
    expect(took).toBeGreaterThanOrEqual(250);
    expect(took, 'close() took far longer than drainTimeoutMs (300 ms)').toBeLessThan(2000);
    const outcome = await response;
    expect('err' in outcome, `the request that never finished got an answer: ${JSON.stringify(outcome)}`).toBe(true);
  });
});

describe('graceful shutdown of the real process', () => {
  it('on SIGTERM finishes the in-flight request and exits 0', async () => {
    const u = await slowUpstream(300);
    const dir = await tempDir();
    resources.defer(() => dir.close());
    const letsencryptDir = path.join(dir.path, 'le');
    await writeRoutes(path.join(letsencryptDir, 'proximation', 'routes.json'), table([{ name: 'app', hosts: ['app.test'], upstreams: [u.origin] }]));
    const proc = await startServeProcess(letsencryptDir, { PROXIMATION_DRAIN_TIMEOUT: '10s' });
    resources.defer(() => proc.kill());
    const { cli } = proc;
    const response = httpsRequest(proc.target, 'app.test', { path: '/slow' });
    await u.received;
    cli.child.kill('SIGTERM');

    const res = await response;
    expect(res.status).toBe(200);
    expect(res.body).toBe(BODY);
    const exit = await cli.exited;
    expect(exit, `stderr: ${cli.stderr()}`).toEqual({ code: 0, signal: null });
    const lines = cli.stdout().trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(lines).toContainEqual(expect.objectContaining({ msg: 'shutdown requested', signal: 'SIGTERM' }));
    expect(lines.at(-1)).toMatchObject({ msg: 'stopped' });
  });
});
