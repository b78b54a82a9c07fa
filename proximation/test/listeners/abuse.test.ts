/**
 * The attacks a public front door gets, each at a small bounded scale, against a real proxy and real
 * upstreams: HPACK-amplified heads, slow HTTP/2 uploads, many streams held open, stalled TLS handshakes,
 * connection floods from one address, request floods and rapid reset. Each asserts what the upstream got
 * (or did not get) and the metric that shows the limit acted.
 */
import http from 'node:http';
import http2 from 'node:http2';
import net from 'node:net';
import tls from 'node:tls';
import { describe, expect, it } from 'vitest';
import { echoHandler, httpRequest, limitHits, table, managed, type Proxy } from '../support/fixtures.js';
import { waitUntil, within } from '../support/process.js';

const resources = managed();

/**
 * An upstream that records each request it receives and answers only when told to (`releaseAll`: the
 * held ones now, every later one at once), and the most requests it held at a time.
 */
async function holdingUpstream(): Promise<{ origin: string; requests: http.IncomingMessage[]; connections: () => number; mostAtOnce: () => number; releaseAll(): void }> {
  const requests: http.IncomingMessage[] = [];
  const held: http.ServerResponse[] = [];
  let released = false;
  let open = 0;
  let most = 0;
  const u = await resources.upstream((req, res) => {
    requests.push(req);
    most = Math.max(most, ++open);
    res.once('close', () => open--);
    req.resume();
    if (released) req.once('end', () => res.end('done'));
    else held.push(res);
  });
  let connections = 0;
  u.server.on('connection', () => connections++);
  return {
    origin: u.origin,
    requests,
    connections: () => connections,
    mostAtOnce: () => most,
    releaseAll: () => {
      released = true;
      for (const res of held.splice(0)) res.end('done');
    },
  };
}

function h2Session(p: Proxy): http2.ClientHttp2Session {
  const session = http2.connect(`https://127.0.0.1:${p.server.https.port}`, { ca: p.ca, servername: 'app.test' });
  session.on('error', () => {});
  resources.defer(async () => void session.destroy());
  return session;
}

/** Whether a TLS connection to the proxy gets through its handshake or is closed first. */
function handshake(p: Proxy, alpn: string): Promise<'admitted' | 'closed'> {
  return new Promise((resolve) => {
    const s = tls.connect({ host: '127.0.0.1', port: p.server.https.port, servername: 'app.test', ca: p.ca, ALPNProtocols: [alpn] });
    resources.defer(async () => void s.destroy());
    s.once('secureConnect', () => resolve('admitted'));
    s.on('error', () => {});
    s.once('close', () => resolve('closed'));
  });
}

interface StreamOutcome {
  status: number | undefined;
  rstCode: number;
}

/** Resolves when the stream closes, with its status (if a response came) and its reset code. */
function outcome(stream: http2.ClientHttp2Stream): Promise<StreamOutcome> {
  let status: number | undefined;
  stream.on('response', (h) => (status = Number(h[':status'])));
  stream.on('data', () => {});
  stream.on('error', () => {});
  return new Promise((resolve) => stream.once('close', () => resolve({ status, rstCode: stream.rstCode ?? 0 })));
}

describe('HTTP/2 header lists', () => {
  it('answers 431 to (or resets) a stream whose head HPACK expands past maxHeaderSize, first flight included; nothing reaches the upstream', async () => {
    const u = await holdingUpstream();
    const p = await resources.proxy(table([{ name: 'app', hosts: ['app.test'], upstreams: [u.origin] }]), { maxHeaderSize: '16384' });
    // Node's client refuses to send a head it thinks too large; the attacker's client would not.
    const session = http2.connect(`https://127.0.0.1:${p.server.https.port}`, { ca: p.ca, servername: 'app.test', maxSendHeaderBlockLength: 1 << 20 });
    session.on('error', () => {});
    resources.defer(async () => void session.destroy());
    // One 4000-byte value enters the HPACK table once; each repeat is one byte on the wire: ~150 KB decoded.
    // Sent in the first flight, before the client has acknowledged the server's SETTINGS, Node applies no
    // limit of its own yet (it only enforces acknowledged settings): the proxy's check answers 431.
    const value = 'a'.repeat(4000);
    const amplified = () => outcome(session.request({ ':path': '/amplified', ':authority': 'app.test', 'x-fill': Array<string>(37).fill(value) }));
    expect(await amplified()).toEqual({ status: 431, rstCode: 0 });
    // Later Node resets such a stream itself (ENHANCE_YOUR_CALM) while decoding, or the check answers 431.
    const later = await amplified();
    expect(later.status === 431 || later.rstCode === http2.constants.NGHTTP2_ENHANCE_YOUR_CALM, JSON.stringify(later)).toBe(true);

    expect(u.requests).toHaveLength(0);
    expect(await limitHits(p, 'header_list_size')).toBe(later.status === 431 ? 2 : 1);

    // The session stays usable, and a head under the limit is forwarded whole.
    const fine = outcome(session.request({ ':path': '/fine', ':authority': 'app.test', 'x-fill': Array<string>(3).fill(value) }));
    await waitUntil(() => u.requests.length === 1, 'the upstream to receive the request under the limit');
    expect(u.requests[0]!.headers['x-fill']).toBe(Array<string>(3).fill(value).join(', '));
    u.releaseAll();
    expect((await fine).status).toBe(200);
  });
});

describe('HTTP/2 uploads', () => {
  it('resets a stream whose body is still arriving requestTimeoutMs after its headers, and the upstream request ends', async () => {
    const u = await holdingUpstream();
    const p = await resources.proxy(table([{ name: 'app', hosts: ['app.test'], upstreams: [u.origin] }]), { requestTimeoutMs: '500ms', headersTimeoutMs: '400ms', idleTimeoutMs: '30s' });
    const session = h2Session(p);
    const stream = session.request({ ':path': '/slow', ':method': 'POST', ':authority': 'app.test' });
    const started = Date.now();
    const done = outcome(stream);
    // A byte every 100 ms: never idle, never finished.
    const trickle = setInterval(() => stream.writable && stream.write('x'), 100);
    resources.defer(async () => clearInterval(trickle));
    await waitUntil(() => u.requests.length === 1, 'the upload to reach the upstream');
    const upstreamClosed = new Promise<boolean>((resolve) => u.requests[0]!.once('close', () => resolve(u.requests[0]!.complete)));
    const result = await within(done, 5000, 'the proxy resetting a slow upload (requestTimeoutMs 500 ms)');
    clearInterval(trickle);
    expect(Date.now() - started).toBeGreaterThanOrEqual(450);
    expect(result.rstCode).toBe(http2.constants.NGHTTP2_CANCEL);
    expect(await within(upstreamClosed, 5000, 'the upstream request to be cut'), 'the upstream saw a complete body').toBe(false);
    expect(await limitHits(p, 'h2_request_timeout')).toBe(1);
  });

  it('holds no more upstream requests than the per-connection and per-address caps; the rest wait their turn', async () => {
    const u = await holdingUpstream();
    const p = await resources.proxy(table([{ name: 'app', hosts: ['app.test'], upstreams: [u.origin] }]), {
      maxUpstreamRequestsPerConnection: '3',
      maxUpstreamRequestsPerAddress: '4',
    });
    const streams: http2.ClientHttp2Stream[] = [];
    const open = (session: http2.ClientHttp2Session, n: number): Promise<StreamOutcome>[] =>
      Array.from({ length: n }, (_, i) => {
        const stream = session.request({ ':path': `/upload-${i}`, ':method': 'POST', ':authority': 'app.test' });
        streams.push(stream);
        stream.write('part of a body that has not ended yet');
        return outcome(stream);
      });
    // Slow uploads: 6 on one session (3 go through, 3 wait), then 3 on another (the address's 4th goes through).
    const first = open(h2Session(p), 6);
    await waitUntil(async () => u.requests.length === 3 && (await limitHits(p, 'upstream_requests_per_connection')) === 3, 'three uploads to reach the upstream and three to wait');
    const second = open(h2Session(p), 3);
    await waitUntil(async () => u.requests.length === 4 && (await limitHits(p, 'upstream_requests_per_address')) === 2, 'the upstream to hold 4 and two more to wait');
    expect(u.connections()).toBe(4);
    // As uploads finish, the waiting ones go, never more than the caps at once.
    u.releaseAll();
    for (const stream of streams) stream.end();
    const statuses = (await Promise.all([...first, ...second])).map((o) => o.status);
    expect(statuses).toEqual(Array<number>(9).fill(200));
    expect(u.requests).toHaveLength(9);
    expect(u.mostAtOnce()).toBe(4);
  });
});

describe('requests per address', () => {
  it('refuses streams past the rate, closes a rapid-reset session and its address\'s new connections, and the upstream sees at most the rate', async () => {
    const u = await holdingUpstream();
    const p = await resources.proxy(table([{ name: 'app', hosts: ['app.test'], upstreams: [u.origin] }]), { maxRequestRatePerAddress: '1' });
    const session = h2Session(p);
    const closed = new Promise<void>((resolve) => session.once('close', () => resolve()));
    const started = performance.now();
    // Rapid reset: each stream is cancelled as soon as it has its id, so its HEADERS go out first.
    for (let i = 0; i < 60; i++) {
      const stream = session.request({ ':path': `/reset-${i}`, ':authority': 'app.test' });
      stream.on('error', () => {});
      stream.once('ready', () => stream.close(http2.constants.NGHTTP2_CANCEL));
    }
    await within(closed, 5000, 'the proxy closing the rapid-reset session');
    const elapsedS = (performance.now() - started) / 1000;
    // A burst of 2, then one a second; 32 refusals close the session.
    expect(u.requests.length).toBeLessThanOrEqual(2 + Math.ceil(elapsedS));
    expect(await limitHits(p, 'request_rate_per_address')).toBe(32);
    // The address now owes a burst: its next connection is closed before TLS.
    const again = await handshake(p, 'h2');
    expect(again).toBe('closed');
    expect(await limitHits(p, 'request_rate_per_address')).toBe(33);
  });

  it('takes WebSocket upgrades from the same rate: past it 429 on the socket, and no tunnel is opened', async () => {
    const upstreamSockets: net.Socket[] = [];
    const raw = net.createServer((socket) => {
      upstreamSockets.push(socket);
      socket.on('error', () => {});
    });
    await new Promise<void>((resolve) => raw.listen(0, '127.0.0.1', resolve));
    resources.defer(async () => {
      for (const socket of upstreamSockets) socket.destroy();
      await new Promise<void>((resolve) => raw.close(() => resolve()));
    });
    const origin = `http://127.0.0.1:${(raw.address() as net.AddressInfo).port}`;
    const p = await resources.proxy(table([{ name: 'app', hosts: ['app.test'], upstreams: [origin] }]), { maxRequestRatePerAddress: '1' });
    const answers: string[] = [];
    for (let i = 0; i < 3; i++) {
      const s = tls.connect({ host: '127.0.0.1', port: p.server.https.port, servername: 'app.test', ca: p.ca, ALPNProtocols: ['http/1.1'] });
      resources.defer(async () => void s.destroy());
      s.on('data', (c: Buffer) => answers.push(c.toString('latin1')));
      s.on('error', () => {});
      s.once('secureConnect', () =>
        s.write('GET /ws HTTP/1.1\r\nhost: app.test\r\nconnection: upgrade\r\nupgrade: websocket\r\nsec-websocket-version: 13\r\nsec-websocket-key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n'),
      );
    }
    // A burst of 2 is tunnelled (the silent upstream never answers them); the third is refused.
    await waitUntil(() => upstreamSockets.length === 2 && answers.length === 1, 'two tunnels to reach the upstream and one upgrade to be answered');
    expect(answers[0]).toMatch(/^HTTP\/1\.1 429 /);
    expect(await limitHits(p, 'request_rate_per_address')).toBe(1);
    expect(upstreamSockets).toHaveLength(2);
  });

  it('lets each client behind a trusted proxy have its own bucket', async () => {
    const u = await resources.upstream(echoHandler());
    const p = await resources.proxy(table([{ name: 'app', hosts: ['app.test'], upstreams: [u.origin] }]), { maxRequestRatePerAddress: '1', trustedProxies: '127.0.0.0/8' });
    const session = h2Session(p);
    const from = (client: string) => outcome(session.request({ ':path': '/', ':authority': 'app.test', 'x-forwarded-for': client }));
    const first = await Promise.all([from('203.0.113.1'), from('203.0.113.1'), from('203.0.113.1'), from('203.0.113.1')]);
    expect(first.filter((o) => o.status === 429).length).toBeGreaterThanOrEqual(1);
    // Another client behind the same proxy is not held back by the first one's requests.
    const other = await Promise.all([from('203.0.113.2'), from('203.0.113.2')]);
    expect(other.map((o) => o.status)).toEqual([200, 200]);
  });
});

describe('connections per address', () => {
  it('closes connections from one address past the limit, on both listeners, and exempts trusted proxies', async () => {
    const u = await resources.upstream(echoHandler());
    const routes = table([{ name: 'app', hosts: ['app.test'], upstreams: [u.origin] }]);
    const p = await resources.proxy(routes, { maxConnectionsPerAddress: '2' });
    expect([await handshake(p, 'http/1.1'), await handshake(p, 'http/1.1'), await handshake(p, 'http/1.1')]).toEqual(['admitted', 'admitted', 'closed']);
    const plain = [0, 1, 2].map(() => net.connect(p.server.http.port, '127.0.0.1'));
    for (const s of plain) resources.defer(async () => void s.destroy());
    const third = await within(new Promise<void>((resolve) => plain[2]!.once('close', () => resolve())), 3000, 'the third plain-HTTP connection to be closed');
    expect(third).toBeUndefined();
    expect(await limitHits(p, 'connections_per_address')).toBe(2);

    const behindLb = await resources.proxy(routes, { maxConnectionsPerAddress: '2', trustedProxies: '127.0.0.1' });
    expect([await handshake(behindLb, 'http/1.1'), await handshake(behindLb, 'http/1.1'), await handshake(behindLb, 'http/1.1')]).toEqual(['admitted', 'admitted', 'admitted']);
  });
});

describe('TLS handshakes', () => {
  it('closes connections that stall in the handshake after tlsHandshakeTimeoutMs, so they cannot hold the connection budget', async () => {
    const u = await resources.upstream(echoHandler());
    const p = await resources.proxy(table([{ name: 'app', hosts: ['app.test'], upstreams: [u.origin] }]), {
      tlsHandshakeTimeoutMs: '500ms',
      headersTimeoutMs: '10s',
      idleTimeoutMs: '30s',
      maxConnections: '4',
      maxConnectionsPerAddress: '100',
    });
    // Four connections fill the budget: two send nothing, two the first bytes of a ClientHello.
    const started = Date.now();
    const stalled = [0, 1, 2, 3].map((i) => {
      const s = net.connect(p.server.https.port, '127.0.0.1', () => {
        if (i % 2 === 1) s.write(Buffer.from([0x16, 0x03, 0x01, 0x00, 0xc8, 0x01, 0x00, 0x00, 0xc4, 0x03, 0x03]));
      });
      s.on('error', () => {});
      resources.defer(async () => void s.destroy());
      return new Promise<number>((resolve) => s.once('close', () => resolve(Date.now())));
    });
    const closedAt = await within(Promise.all(stalled), 5000, 'the stalled handshakes to be closed (tlsHandshakeTimeoutMs 500 ms)');
    expect(Math.min(...closedAt) - started).toBeGreaterThanOrEqual(450);
    expect(await limitHits(p, 'tls_handshake_timeout')).toBe(4);
    // With them gone, a real client gets in.
    const res = await new Promise<number>((resolve, reject) => {
      const session = h2Session(p);
      const stream = session.request({ ':path': '/', ':authority': 'app.test' });
      stream.on('response', (h) => resolve(Number(h[':status'])));
      stream.on('error', reject);
    });
    expect(res).toBe(200);
  });
});
