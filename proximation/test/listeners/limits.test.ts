import http2 from 'node:http2';
import tls from 'node:tls';
import { describe, expect, it } from 'vitest';
import { echoHandler, startProxy, startUpstream, table, type Proxy, managed } from '../support/fixtures.js';
import { waitUntil, within } from '../support/process.js';

const resources = managed();

async function proxy(settings: Parameters<typeof startProxy>[1]): Promise<Proxy> {
  const u = await startUpstream(echoHandler());
  resources.defer(() => u.close());
  const p = await startProxy(table([{ name: 'app', hosts: ['app.test'], upstreams: [u.origin] }]), settings);
  resources.defer(() => p.close());
  return p;
}

/** A raw HTTP/1.1-over-TLS client connection that records what it reads and when it closes. */
interface RawClient {
  socket: tls.TLSSocket;
  received(): string;
  /** Resolves with the time the connection closed (by either side, for any reason). */
  closed: Promise<number>;
  /** Resolves once `text` has been received. */
  waitFor(text: string): Promise<void>;
}

async function connect(p: Proxy): Promise<RawClient> {
  const socket = tls.connect({ host: '127.0.0.1', port: p.server.https.port, servername: 'app.test', ca: p.ca, ALPNProtocols: ['http/1.1'] });
  resources.defer(async () => void socket.destroy());
  let text = '';
  const waiters = new Set<() => void>();
  socket.on('data', (c: Buffer) => {
    text += c.toString('latin1');
    for (const wake of waiters) wake();
  });
  // Resets are expected here: the server is told to cut these clients off.
  socket.on('error', () => {});
  const closed = new Promise<number>((resolve) => socket.once('close', () => resolve(Date.now())));
  await new Promise<void>((resolve, reject) => {
    socket.once('secureConnect', resolve);
    socket.once('close', () => reject(new Error('connection closed before the TLS handshake completed')));
  });
  expect(socket.alpnProtocol).toBe('http/1.1');
  return {
    socket,
    received: () => text,
    closed,
    waitFor: (wanted) =>
      new Promise((resolve, reject) => {
        const check = (): void => {
          if (!text.includes(wanted)) return;
          waiters.delete(check);
          resolve();
        };
        waiters.add(check);
        void closed.then(() => {
          if (waiters.delete(check)) reject(new Error(`connection closed before ${JSON.stringify(wanted)} arrived; got ${JSON.stringify(text)}`));
        });
        check();
      }),
  };
}

describe('HTTPS listener limits (HTTP/1.1)', () => {
  it('answers 431 to a header block larger than maxHeaderSize', async () => {
    const p = await proxy({ maxHeaderSize: '4096' });

    // A block under the limit passes; the larger one is still under Node's default (16 KiB), so its 431
    // proves the configured limit is the one applied.
    const small = await connect(p);
    small.socket.write(`GET /ok HTTP/1.1\r\nhost: app.test\r\nx-fill: ${'a'.repeat(3000)}\r\n\r\n`);
    await small.waitFor('\r\n\r\n');
    expect(small.received()).toMatch(/^HTTP\/1\.1 200 /);

    const big = await connect(p);
    big.socket.write(`GET /big HTTP/1.1\r\nhost: app.test\r\nx-fill: ${'a'.repeat(8000)}\r\n\r\n`);
    await big.closed;
    expect(big.received()).toMatch(/^HTTP\/1\.1 431 /);
  });

  it('gives up on a client that does not finish its headers within headersTimeoutMs', async () => {
    // idleTimeoutMs stays long, and the client trickles a byte every 100 ms, so only the headers
    // timeout can end this (a slowloris client is never idle).
    const p = await proxy({ headersTimeoutMs: '500ms', idleTimeoutMs: '30s' });
    const c = await connect(p);
    const started = Date.now();
    c.socket.write('GET /slow HTTP/1.1\r\nhost: app.test\r\nx-slow: ');
    const trickle = setInterval(() => c.socket.writable && c.socket.write('a'), 100);
    resources.defer(async () => clearInterval(trickle));
    const closedAt = await within(c.closed, 3000, 'the server ending a request whose headers never finish (headersTimeoutMs 500 ms)');
    clearInterval(trickle);
    expect(closedAt - started).toBeGreaterThanOrEqual(450);
    const answer = c.received();
    if (answer !== '') expect(answer).toMatch(/^HTTP\/1\.1 408 /);
  });

  it('closes an idle keep-alive connection after idleTimeoutMs', async () => {
    const p = await proxy({ idleTimeoutMs: '500ms' });
    const c = await connect(p);
    c.socket.write('GET /one HTTP/1.1\r\nhost: app.test\r\n\r\n');
    await c.waitFor('"url":"/one"');
    expect(c.received()).toMatch(/^HTTP\/1\.1 200 /);
    expect(c.received().toLowerCase()).toContain('connection: keep-alive');
    const idleSince = Date.now();
    const closedAt = await within(c.closed, 3000, 'the server closing an idle keep-alive connection (idleTimeoutMs 500 ms)');
    expect(closedAt - idleSince).toBeGreaterThanOrEqual(400);
  });

  it('refuses a connection beyond maxConnections while the others stay open, and accepts again once one closes', async () => {
    const p = await proxy({ maxConnections: '2' });
    const first = await connect(p);
    const second = await connect(p);

    const third = await new Promise<'admitted' | 'closed'>((resolve) => {
      const s = tls.connect({ host: '127.0.0.1', port: p.server.https.port, servername: 'app.test', ca: p.ca, ALPNProtocols: ['http/1.1'] });
      resources.defer(async () => void s.destroy());
      s.once('secureConnect', () => resolve('admitted'));
      s.on('error', () => {});
      s.once('close', () => resolve('closed'));
    });
    expect(third, 'a third connection was admitted with maxConnections 2').toBe('closed');

    // The two admitted connections still work.
    for (const [c, path] of [[first, '/first'], [second, '/second']] as const) {
      c.socket.write(`GET ${path} HTTP/1.1\r\nhost: app.test\r\n\r\n`);
      await c.waitFor(`"url":"${path}"`);
    }

    // The server counts a connection as gone when it sees it close, which has no event on this side.
    first.socket.destroy();
    await waitUntil(async () => {
      const c = await connect(p).catch(() => undefined);
      if (c === undefined) return false;
      c.socket.write('GET /again HTTP/1.1\r\nhost: app.test\r\n\r\n');
      return c.waitFor('"url":"/again"').then(() => true, () => false);
    }, 'a new connection to be accepted after one of the two closed', 3000);
  });
});

describe('HTTPS listener limits (HTTP/2)', () => {
  it('closes an HTTP/2 session that stays idle longer than idleTimeoutMs', async () => {
    const p = await proxy({ idleTimeoutMs: '500ms' });
    const session = http2.connect(`https://127.0.0.1:${p.server.https.port}`, { ca: p.ca, servername: 'app.test' });
    resources.defer(async () => void session.destroy());
    session.on('error', () => {});
    const ended = new Promise<number>((resolve) => {
      session.once('goaway', () => resolve(Date.now()));
      session.once('close', () => resolve(Date.now()));
    });
    const status = await new Promise<number>((resolve, reject) => {
      const stream = session.request({ ':path': '/h2', ':authority': 'app.test' });
      let s = 0;
      stream.on('response', (h) => (s = Number(h[':status'])));
      stream.on('data', () => {});
      stream.on('end', () => resolve(s));
      stream.on('error', reject);
    });
    expect(status).toBe(200);
    const idleSince = Date.now();
    const endedAt = await within(ended, 3000, 'the server ending an idle HTTP/2 session (idleTimeoutMs 500 ms)');
    expect(endedAt - idleSince).toBeGreaterThanOrEqual(400);
  });
});
