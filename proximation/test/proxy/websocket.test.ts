import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import http from 'node:http';
import https from 'node:https';
import net from 'node:net';
import type { Duplex } from 'node:stream';
import { afterEach, describe, expect, it } from 'vitest';
import { WebSocket, WebSocketServer } from 'ws';
import { FrameBoundaryTracker, buildCloseFrame } from '../../src/proxy/websocket-frames.js';
import { WebSocketTunnels, type TunnelResult } from '../../src/proxy/websocket.js';
import { selfSignedCertificate } from '../support/self-signed.js';

const cleanups: (() => unknown)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

async function listen(server: net.Server): Promise<number> {
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return (server.address() as net.AddressInfo).port;
}

/** Closes `server` after the test, destroying its connections first: upgraded ones keep it open otherwise. */
function closeAfterTest(server: net.Server): void {
  const sockets = new Set<net.Socket>();
  server.on('connection', (socket: net.Socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
  });
  cleanups.push(async () => {
    for (const socket of sockets) socket.destroy();
    await new Promise((resolve) => server.close(resolve));
  });
}

interface UpstreamConnection {
  ws: WebSocket;
  /** The TCP (or TLS) socket under `ws`, to watch or write raw frames. */
  socket: net.Socket;
  /** The close code `ws` reports. */
  closed: Promise<number>;
}

async function wsUpstream(options: { echo?: boolean; perMessageDeflate?: boolean; tls?: { key: string; cert: string } } = {}) {
  const server = options.tls === undefined ? http.createServer() : https.createServer(options.tls);
  closeAfterTest(server);
  const wss = new WebSocketServer({
    server,
    perMessageDeflate: options.perMessageDeflate ?? false,
    handleProtocols: (protocols) => (protocols.has('chat.v1') ? 'chat.v1' : false),
  });
  const connections: UpstreamConnection[] = [];
  wss.on('connection', (ws, req) => {
    const closed = new Promise<number>((resolve) => ws.on('close', (code) => resolve(code)));
    connections.push({ ws, socket: req.socket, closed });
    if (options.echo ?? true) ws.on('message', (data, isBinary) => ws.send(data as Buffer, { binary: isBinary }));
  });
  const port = await listen(server);
  return { origin: `${options.tls === undefined ? 'http' : 'https'}://127.0.0.1:${port}`, connections };
}

/** An HTTP server whose 'upgrade' handler opens tunnels to `origin`, as the proxy's server does. */
async function proxyTo(origin: string, tunnels: WebSocketTunnels) {
  const server = http.createServer((_req, res) => res.writeHead(404).end());
  closeAfterTest(server);
  const results = new Map<string, { promise: Promise<TunnelResult>; resolve: (result: TunnelResult) => void; calls: number }>();
  const resultOf = (id: string) => {
    let entry = results.get(id);
    if (entry === undefined) {
      let resolve!: (result: TunnelResult) => void;
      const promise = new Promise<TunnelResult>((r) => (resolve = r));
      entry = { promise, resolve, calls: 0 };
      results.set(id, entry);
    }
    return entry;
  };
  const clientSockets = new Map<string, Duplex>();
  server.on('upgrade', (req: http.IncomingMessage, socket: Duplex, head: Buffer) => {
    const url = new URL(req.url ?? '/', 'http://proxy');
    clientSockets.set(url.searchParams.get('id') ?? '', socket);
    const headers: Record<string, string | string[]> = {};
    for (const [name, value] of Object.entries(req.headers)) {
      if (value !== undefined && name !== 'connection' && name !== 'upgrade') headers[name] = value;
    }
    const target = { origin, path: req.url ?? '/', headers, labels: { version: url.searchParams.get('version') ?? '1' } };
    tunnels.open(req, socket, head, target, (result) => {
      const entry = resultOf(url.searchParams.get('id') ?? '');
      entry.calls++;
      entry.resolve(result);
    });
  });
  cleanups.push(() => {
    for (const [id, { calls }] of results) if (calls > 1) throw new Error(`onDone called ${calls} times for ${id}`);
  });
  const port = await listen(server);
  return {
    port,
    url: (id: string, version = '1') => `ws://127.0.0.1:${port}/echo?id=${id}&version=${version}`,
    result: (id: string) => resultOf(id).promise,
    /** The proxy's side of a client's connection. */
    clientSocket: (id: string) => clientSockets.get(id),
  };
}

function newTunnels(options: { connectTimeoutMs?: number; ca?: string } = {}): WebSocketTunnels {
  const tunnels = new WebSocketTunnels({ connectTimeoutMs: options.connectTimeoutMs ?? 2_000, ca: options.ca });
  cleanups.push(() => tunnels.close({ timeoutMs: 100 }));
  return tunnels;
}

async function echoSetup() {
  const upstream = await wsUpstream();
  const tunnels = newTunnels();
  const proxy = await proxyTo(upstream.origin, tunnels);
  return { upstream, tunnels, proxy };
}

/** An open client, and its TCP socket for the tests that write raw frames. */
async function connect(url: string, protocols: string[] = []): Promise<{ ws: WebSocket; socket: net.Socket }> {
  const ws = new WebSocket(url, protocols);
  cleanups.push(() => ws.terminate());
  const [[response]] = await Promise.all([once(ws, 'upgrade') as Promise<[http.IncomingMessage]>, once(ws, 'open')]);
  return { ws, socket: response.socket as net.Socket };
}

/**
 * A client that sends its upgrade request (and `early` bytes right behind it), reads the 101 head and
 * returns its socket paused, so that the test decides when it reads, with the bytes read past the head.
 */
async function rawClient(port: number, path: string, early = Buffer.alloc(0)): Promise<{ socket: net.Socket; rest: Buffer }> {
  const socket = net.connect(port, '127.0.0.1');
  cleanups.push(() => socket.destroy());
  const key = randomBytes(16).toString('base64');
  const request =
    `GET ${path} HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n` +
    `Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: ${key}\r\n\r\n`;
  socket.write(Buffer.concat([Buffer.from(request), early]));
  let received = Buffer.alloc(0);
  while (!received.includes('\r\n\r\n')) received = Buffer.concat([received, ((await once(socket, 'data')) as [Buffer])[0]]);
  socket.pause();
  const headEnd = received.indexOf('\r\n\r\n') + 4;
  expect(received.subarray(0, headEnd).toString('latin1')).toMatch(/^HTTP\/1\.1 101 /);
  return { socket, rest: received.subarray(headEnd) };
}

async function until(condition: () => boolean, timeoutMs = 5_000): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  while (!condition()) {
    if (performance.now() > deadline) throw new Error(`condition not met within ${timeoutMs} ms: ${condition}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

/** The response of an upgrade that did not switch protocols. */
async function refusedUpgrade(url: string): Promise<{ status: number; headers: http.IncomingHttpHeaders; body: string }> {
  const ws = new WebSocket(url);
  ws.on('error', () => {}); // Aborting the handshake below reports an error we expect.
  const [request, response] = (await once(ws, 'unexpected-response')) as [http.ClientRequest, http.IncomingMessage];
  let body = '';
  for await (const chunk of response) body += chunk;
  request.destroy();
  return { status: response.statusCode ?? 0, headers: response.headers, body };
}

interface Message {
  data: Buffer;
  isBinary: boolean;
}

/** The next `count` messages `ws` receives; registers at once, so none is missed. */
function collect(ws: WebSocket, count: number): Promise<Message[]> {
  return new Promise((resolve) => {
    const messages: Message[] = [];
    const onMessage = (data: Buffer, isBinary: boolean) => {
      messages.push({ data, isBinary });
      if (messages.length === count) {
        ws.off('message', onMessage);
        resolve(messages);
      }
    };
    ws.on('message', onMessage);
  });
}

function closeCode(ws: WebSocket): Promise<number> {
  return once(ws, 'close').then(([code]) => code as number);
}

/** A data frame header (FIN, binary) for `length` bytes; masked with an all-zero key, so the payload goes as is. */
function frameHeader(length: number, masked: boolean, opcode = 0x2): Buffer {
  const maskBit = masked ? 0x80 : 0;
  let header: Buffer;
  if (length < 126) {
    header = Buffer.from([0x80 | opcode, maskBit | length]);
  } else if (length < 0x10000) {
    header = Buffer.from([0x80 | opcode, maskBit | 126, 0, 0]);
    header.writeUInt16BE(length, 2);
  } else {
    header = Buffer.alloc(10);
    header[0] = 0x80 | opcode;
    header[1] = maskBit | 127;
    header.writeBigUInt64BE(BigInt(length), 2);
  }
  return masked ? Buffer.concat([header, Buffer.alloc(4)]) : header;
}

describe('WebSocketTunnels', () => {
  it('echoes text and binary messages, a 1 MiB one and many small ones', async () => {
    const { upstream, tunnels, proxy } = await echoSetup();
    const { ws } = await connect(proxy.url('a'));
    expect(tunnels.size).toBe(1);

    let received = collect(ws, 1);
    ws.send('hello');
    const [text] = await received;
    expect(text).toEqual({ data: Buffer.from('hello'), isBinary: false });

    const big = randomBytes(1 << 20);
    received = collect(ws, 1);
    ws.send(big);
    const [binary] = await received;
    expect(binary!.isBinary).toBe(true);
    expect(binary!.data.equals(big)).toBe(true);

    const small = Array.from({ length: 2_000 }, (_, i) => `message ${i}`);
    received = collect(ws, small.length);
    for (const message of small) ws.send(message);
    expect((await received).map((m) => m.data.toString())).toEqual(small);

    ws.close(1000, 'done');
    const result = await proxy.result('a');
    expect(result).toMatchObject({ status: 101, closedBy: 'client', error: undefined });
    expect(result.bytesFromClient).toBeGreaterThan(big.length);
    expect(result.bytesFromUpstream).toBeGreaterThan(big.length);
    expect(await upstream.connections[0]!.closed).toBe(1000);
    expect(tunnels.size).toBe(0);
  });

  it('forwards the bytes a client sends right behind its upgrade request', async () => {
    const { proxy } = await echoSetup();
    const { socket, rest } = await rawClient(proxy.port, '/echo?id=a', Buffer.concat([frameHeader(5, true, 0x1), Buffer.from('early')]));
    let echoed = rest;
    socket.on('data', (chunk: Buffer) => (echoed = Buffer.concat([echoed, chunk]))).resume();
    await until(() => echoed.length >= 7);
    expect(echoed).toEqual(Buffer.concat([frameHeader(5, false, 0x1), Buffer.from('early')]));
  });

  it('reports the upstream as the closer when it closes first', async () => {
    const { upstream, tunnels, proxy } = await echoSetup();
    const { ws } = await connect(proxy.url('a'));
    const clientClosed = closeCode(ws);
    upstream.connections[0]!.ws.close(4001, 'bye');
    expect(await clientClosed).toBe(4001);
    expect(await proxy.result('a')).toMatchObject({ status: 101, closedBy: 'upstream', error: undefined });
    expect(tunnels.size).toBe(0);
  });

  it('passes the subprotocol and extension negotiation through', async () => {
    const upstream = await wsUpstream({ perMessageDeflate: true });
    const proxy = await proxyTo(upstream.origin, newTunnels());
    const { ws } = await connect(proxy.url('a'), ['chat.v2', 'chat.v1']);
    expect(ws.protocol).toBe('chat.v1');
    expect(ws.extensions).toContain('permessage-deflate');
    const compressible = 'the same words again and again '.repeat(10_000);
    const received = collect(ws, 1);
    ws.send(compressible);
    expect((await received)[0]!.data.toString()).toBe(compressible);
  });

  it('relays a refused upgrade, body included, without hop-by-hop headers', async () => {
    const upstream = http.createServer();
    closeAfterTest(upstream);
    upstream.on('upgrade', (_req, socket: net.Socket) =>
      socket.end(
        'HTTP/1.1 403 Forbidden\r\nX-Reason: policy\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nno a\r\n5\r\nccess\r\n0\r\n\r\n',
      ),
    );
    const port = await listen(upstream);
    const tunnels = newTunnels();
    const proxy = await proxyTo(`http://127.0.0.1:${port}`, tunnels);

    const response = await refusedUpgrade(proxy.url('a'));
    expect(response).toMatchObject({ status: 403, body: 'no access', headers: { 'x-reason': 'policy', connection: 'close' } });
    expect(response.headers['transfer-encoding']).toBeUndefined();
    expect(await proxy.result('a')).toMatchObject({ status: 403, closedBy: 'upstream', bytesFromUpstream: 9 });
    expect(tunnels.size).toBe(0);
  });

  it('answers 502 when the upstream is unreachable', async () => {
    const closed = net.createServer();
    const port = await listen(closed);
    await new Promise((resolve) => closed.close(resolve));
    const proxy = await proxyTo(`http://127.0.0.1:${port}`, newTunnels());

    const response = await refusedUpgrade(proxy.url('a'));
    expect(response.status).toBe(502);
    const result = await proxy.result('a');
    expect(result).toMatchObject({ status: 502, closedBy: 'error', error: { code: 'ERR_WS_UPSTREAM_UNREACHABLE' } });
    expect(result.error?.message).toContain(`127.0.0.1:${port}`);
  });

  it('answers 504 when the upstream accepts the connection but never answers', async () => {
    const silent = net.createServer();
    closeAfterTest(silent);
    const accepted = once(silent, 'connection') as Promise<[net.Socket]>;
    const port = await listen(silent);
    const proxy = await proxyTo(`http://127.0.0.1:${port}`, newTunnels({ connectTimeoutMs: 150 }));

    const started = performance.now();
    const response = await refusedUpgrade(proxy.url('a'));
    expect(response.status).toBe(504);
    expect(performance.now() - started).toBeGreaterThanOrEqual(140);
    expect(await proxy.result('a')).toMatchObject({ status: 504, closedBy: 'error', error: { code: 'ERR_WS_UPSTREAM_TIMEOUT' } });
    const [upstreamSide] = await accepted;
    upstreamSide.resume(); // Reading is what makes its end visible.
    if (!upstreamSide.closed) await once(upstreamSide, 'close'); // The proxy gave up its upstream connection.
  });

  it('answers 400 to an upgrade to anything but websocket', async () => {
    const { proxy } = await echoSetup();
    const request = http.request({ port: proxy.port, host: '127.0.0.1', path: '/?id=a', headers: { connection: 'Upgrade', upgrade: 'h2c' } });
    request.end();
    const [response] = (await once(request, 'response')) as [http.IncomingMessage];
    response.resume();
    expect(response.statusCode).toBe(400);
    expect(await proxy.result('a')).toMatchObject({ status: 400, closedBy: 'error', error: { code: 'ERR_WS_UPGRADE_UNSUPPORTED' } });
  });

  it('tunnels to an https upstream trusted through the ca option', async () => {
    const tls = await selfSignedCertificate();
    const upstream = await wsUpstream({ tls });
    const proxy = await proxyTo(upstream.origin, newTunnels({ ca: tls.cert }));
    const { ws } = await connect(proxy.url('a'));
    const received = collect(ws, 1);
    ws.send('over tls');
    expect((await received)[0]!.data.toString()).toBe('over tls');

    const untrusting = await proxyTo(upstream.origin, newTunnels());
    expect((await refusedUpgrade(untrusting.url('b'))).status).toBe(502);
  });

  it('close() sends 1001 to both ends and resolves once both connections are closed', async () => {
    const { upstream, tunnels, proxy } = await echoSetup();
    const { ws } = await connect(proxy.url('a'));
    const clientClosed = once(ws, 'close') as Promise<[number, Buffer]>;

    const started = performance.now();
    await tunnels.close({ reason: 'restarting', timeoutMs: 10_000 });
    expect(performance.now() - started).toBeLessThan(3_000); // The peers answered: no waiting for the timeout.
    const [code, reason] = await clientClosed;
    expect([code, reason.toString()]).toEqual([1001, 'restarting']);
    expect(await upstream.connections[0]!.closed).toBe(1001);
    expect(await proxy.result('a')).toMatchObject({ status: 101, closedBy: 'drain' });
    expect(tunnels.size).toBe(0);
  });

  it('close() lets the frames in flight in both directions end before the Close frames', async () => {
    const upstream = await wsUpstream({ echo: false });
    const tunnels = newTunnels();
    const proxy = await proxyTo(upstream.origin, tunnels);
    const client = await connect(proxy.url('a'));
    const server = upstream.connections[0]!;
    const toClient = randomBytes(1 << 20);
    const toUpstream = randomBytes(1 << 20);
    const half = toClient.length / 2;
    const clientReceived = collect(client.ws, 1);
    const upstreamReceived = collect(server.ws, 1);
    const clientClosed = closeCode(client.ws);

    // Half of a frame each way; once bytes of each have come through, both directions are mid-frame.
    const clientGotBytes = once(client.socket, 'data');
    const upstreamGotBytes = once(server.socket, 'data');
    server.socket.write(Buffer.concat([frameHeader(toClient.length, false), toClient.subarray(0, half)]));
    client.socket.write(Buffer.concat([frameHeader(toUpstream.length, true), toUpstream.subarray(0, half)]));
    await Promise.all([clientGotBytes, upstreamGotBytes]);
    const closing = tunnels.close({ timeoutMs: 10_000 });
    server.socket.write(toClient.subarray(half));
    client.socket.write(toUpstream.subarray(half));
    await closing;

    expect((await clientReceived)[0]!.data.equals(toClient)).toBe(true);
    expect((await upstreamReceived)[0]!.data.equals(toUpstream)).toBe(true);
    expect(await clientClosed).toBe(1001);
    expect(await server.closed).toBe(1001);
  });

  it('close({ where }) closes only the tunnels whose labels match', async () => {
    const { upstream, tunnels, proxy } = await echoSetup();
    const old = await connect(proxy.url('old', '1'));
    const current = await connect(proxy.url('current', '2'));
    const oldClosed = closeCode(old.ws);

    await tunnels.close({ where: (labels) => labels.version === '1' });
    expect(await oldClosed).toBe(1001);
    expect(tunnels.size).toBe(1);
    const received = collect(current.ws, 1);
    current.ws.send('still here');
    expect((await received)[0]!.data.toString()).toBe('still here');
    expect(current.ws.readyState).toBe(WebSocket.OPEN);
    expect(upstream.connections).toHaveLength(2);
  });

  it('close() destroys a peer that does not answer the Close frame within timeoutMs', async () => {
    const { upstream, tunnels, proxy } = await echoSetup();
    const { ws } = await connect(proxy.url('a'));
    ws.pause(); // A client that stopped reading never sees the Close frame.

    const started = performance.now();
    await tunnels.close({ timeoutMs: 200 });
    const elapsed = performance.now() - started;
    expect(elapsed).toBeGreaterThanOrEqual(190);
    expect(elapsed).toBeLessThan(2_000);
    expect(await upstream.connections[0]!.closed).toBe(1001);
    expect(await proxy.result('a')).toMatchObject({ closedBy: 'drain' });
    expect(tunnels.size).toBe(0);
  });

  it('close() ends a client connection once the client answered, without waiting for the upstream', async () => {
    const { upstream, tunnels, proxy } = await echoSetup();
    const { ws } = await connect(proxy.url('a'));
    upstream.connections[0]!.ws.pause(); // This upstream never answers: its connection lasts until the timeout.

    const started = performance.now();
    const closing = tunnels.close({ timeoutMs: 10_000 });
    // ws, like browsers, waits for the server side to close the connection before reporting 'close'.
    expect(await closeCode(ws)).toBe(1001);
    expect(performance.now() - started).toBeLessThan(2_000);
    expect(tunnels.size).toBe(1); // Still waiting for the upstream.
    upstream.connections[0]!.ws.resume();
    await closing;
    expect(tunnels.size).toBe(0);
  });

  it('applies back-pressure: a client that does not read stalls the upstream, not the proxy memory', async () => {
    const { upstream, proxy } = await echoSetup();
    const { socket: client } = await rawClient(proxy.port, '/echo?id=a');
    const big = Buffer.alloc(24 << 20); // Several times what the socket buffers on the way hold (about 4 MiB here).
    const sent = new Promise((resolve) => upstream.connections[0]!.ws.send(big, resolve));

    expect(await Promise.race([sent.then(() => 'sent'), new Promise((r) => setTimeout(r, 300, 'stalled'))])).toBe('stalled');
    expect(proxy.clientSocket('a')!.writableLength).toBeLessThan(1 << 20);
    let received = 0;
    client.on('data', (chunk: Buffer) => (received += chunk.length)).resume();
    await sent; // Once the client reads, the proxy reads the upstream again.
    await until(() => received > big.length);
  });

  it('closes the upstream connection when the client disconnects', async () => {
    const { upstream, tunnels, proxy } = await echoSetup();
    const { ws } = await connect(proxy.url('a'));
    ws.terminate();
    expect(await upstream.connections[0]!.closed).toBe(1006); // Closed without a Close frame.
    expect(await proxy.result('a')).toMatchObject({ status: 101, closedBy: 'client' });
    expect(tunnels.size).toBe(0);
  });

  it('rejects close codes that may not be sent', async () => {
    const tunnels = newTunnels();
    await expect(tunnels.close({ code: 1006 })).rejects.toMatchObject({ code: 'ERR_WS_CLOSE_FRAME_INVALID' });
  });
});

describe('FrameBoundaryTracker', () => {
  const lengths = [0, 1, 125, 126, 127, 65_535, 65_536, 70_000];

  it('finds the end of every frame fed one byte at a time, masked or not, with 7, 16 and 64-bit lengths', () => {
    const frames = [false, true].flatMap((masked) =>
      lengths.map((length) => Buffer.concat([frameHeader(length, masked), Buffer.alloc(length, 0x81)])),
    );
    const frameEnds: number[] = [];
    let end = 0;
    for (const frame of frames) frameEnds.push((end += frame.length));
    const stream = Buffer.concat(frames);
    const tracker = new FrameBoundaryTracker();
    const boundaries: number[] = [];
    for (let i = 0; i < stream.length; i++) {
      tracker.push(stream.subarray(i, i + 1));
      if (tracker.atBoundary) boundaries.push(i + 1);
    }
    expect(boundaries).toEqual(frameEnds);
  });

  it('tracks many frames in one chunk, and stops at the first boundary when asked', () => {
    const frames = lengths.map((length, i) => Buffer.concat([frameHeader(length, i % 2 === 0), Buffer.alloc(length)]));
    const stream = Buffer.concat(frames);
    const all = new FrameBoundaryTracker();
    expect(all.push(stream)).toBe(stream.length);
    expect(all.atBoundary).toBe(true);

    const stepping = new FrameBoundaryTracker();
    let offset = 0;
    for (const frame of frames) {
      expect(stepping.push(stream.subarray(offset), true)).toBe(0); // Already at a boundary.
      stepping.push(stream.subarray(offset, offset + 1));
      expect(stepping.push(stream.subarray(offset + 1), true)).toBe(frame.length - 1);
      expect(stepping.atBoundary).toBe(true);
      offset += frame.length;
    }
  });

  it('counts 64-bit lengths beyond 32 bits exactly', () => {
    const tracker = new FrameBoundaryTracker();
    const length = 2 ** 32 + 3;
    tracker.push(frameHeader(length, false));
    const mebibyte = Buffer.alloc(1 << 20);
    for (let sent = 0; sent < 2 ** 32; sent += mebibyte.length) tracker.push(mebibyte);
    expect(tracker.atBoundary).toBe(false);
    expect(tracker.push(Buffer.alloc(5), true)).toBe(3);
    expect(tracker.atBoundary).toBe(true);
  });

  it('counts the Close frames it sees', () => {
    const tracker = new FrameBoundaryTracker();
    tracker.push(Buffer.concat([frameHeader(3, true, 0x1), Buffer.from('abc')]));
    expect(tracker.closeFrames).toBe(0);
    tracker.push(Buffer.concat([buildCloseFrame(1001, '', false), buildCloseFrame(1000, 'bye', true)]));
    expect(tracker.closeFrames).toBe(2);
    expect(tracker.atBoundary).toBe(true);
  });
});

describe('buildCloseFrame', () => {
  it('builds an unmasked frame for clients and a masked one for servers', () => {
    expect(buildCloseFrame(1001, 'bye', false)).toEqual(Buffer.from([0x88, 5, 0x03, 0xe9, ...Buffer.from('bye')]));
    const masked = buildCloseFrame(1001, 'bye', true);
    expect([masked[0], masked[1], masked.length]).toEqual([0x88, 0x80 | 5, 11]);
    const payload = masked.subarray(6).map((byte, i) => byte ^ masked[2 + (i % 4)]!);
    expect(Buffer.from(payload)).toEqual(Buffer.from([0x03, 0xe9, ...Buffer.from('bye')]));
  });

  it('refuses codes an endpoint may not send and reasons over 123 bytes', () => {
    for (const code of [999, 1004, 1005, 1006, 1015, 2000, 5000, 1000.5]) {
      expect(() => buildCloseFrame(code, '', false)).toThrow(expect.objectContaining({ code: 'ERR_WS_CLOSE_FRAME_INVALID' }));
    }
    expect(buildCloseFrame(4000, 'é'.repeat(61) + 'x', false)).toHaveLength(127);
    expect(() => buildCloseFrame(1000, 'é'.repeat(62), false)).toThrow(/124 bytes/);
  });
});
