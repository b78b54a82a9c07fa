/**
 * RFC 8441: a WebSocket opened by extended CONNECT on an HTTP/2 connection reaches the HTTP/1.1
 * upstream as an Upgrade (which `ws` must accept: it checks Sec-WebSocket-Key and Version), and the
 * frames pass both ways unchanged. The client speaks the frames by hand so the bytes are exact.
 */
import { once } from 'node:events';
import http2 from 'node:http2';
import { expect, it } from 'vitest';
import { WebSocketServer } from 'ws';
import { launchChromium } from '../../bench/chromium.js';
import { managed, startProxy, startUpstream, table } from '../support/fixtures.js';

const resources = managed();

/** A masked client frame (RFC 6455 5.3): FIN, the opcode, a payload under 126 bytes. */
function clientFrame(opcode: number, payload: Buffer): Buffer {
  const mask = Buffer.from([0x12, 0x34, 0x56, 0x78]);
  const masked = Buffer.from(payload.map((byte, i) => byte ^ mask[i % 4]!));
  return Buffer.concat([Buffer.from([0x80 | opcode, 0x80 | payload.length]), mask, masked]);
}

it('carries a WebSocket over HTTP/2 extended CONNECT to the HTTP/1.1 upstream Upgrade', async () => {
  const upstream = await startUpstream((_req, res) => res.writeHead(404).end());
  const wss = new WebSocketServer({ server: upstream.server });
  const seen: Record<string, string | string[] | undefined>[] = [];
  const closes: number[] = [];
  wss.on('connection', (socket, req) => {
    seen.push(req.headers);
    socket.on('message', (data, binary) => socket.send(data, { binary }));
    socket.on('close', (code) => closes.push(code));
  });
  resources.defer(() => {
    wss.close();
    return upstream.close();
  });
  const proxy = await startProxy(table([{ name: 'app', hosts: ['app.test'], upstreams: [upstream.origin] }]));
  resources.defer(() => proxy.close());

  const session = http2.connect(`https://127.0.0.1:${proxy.server.https.port}`, { ca: proxy.ca, servername: 'app.test' });
  resources.defer(async () => void session.destroy());
  await once(session, 'remoteSettings');
  expect(session.remoteSettings.enableConnectProtocol).toBe(true);
  const stream = session.request(
    { ':method': 'CONNECT', ':protocol': 'websocket', ':scheme': 'https', ':authority': 'app.test', ':path': '/chat', 'sec-websocket-version': '13', origin: 'https://app.test' },
    { endStream: false },
  );
  const [headers] = (await once(stream, 'response')) as [http2.IncomingHttpHeaders];
  expect(headers[':status']).toBe(200);
  expect(headers['sec-websocket-accept']).toBeUndefined();

  stream.write(clientFrame(0x1, Buffer.from('hello')));
  const [reply] = (await once(stream, 'data')) as [Buffer];
  // The upstream's unmasked text frame, byte for byte.
  expect([...reply]).toEqual([0x81, 5, ...Buffer.from('hello')]);
  expect(seen).toHaveLength(1);
  expect(seen[0]).toMatchObject({ upgrade: 'websocket', connection: expect.stringMatching(/upgrade/i), host: 'app.test', 'sec-websocket-version': '13' });
  expect(seen[0]!['sec-websocket-key']).toMatch(/^[A-Za-z0-9+/]{22}==$/);

  stream.write(clientFrame(0x8, Buffer.from([0x03, 0xe8])));
  const [closeReply] = (await once(stream, 'data')) as [Buffer];
  expect([...closeReply.subarray(0, 4)]).toEqual([0x88, 2, 0x03, 0xe8]);
  // A client ends its half once the closing handshake is done (else the proxy waits its release timeout).
  stream.end();
  await expect.poll(() => closes).toEqual([1000]);
  const line = await proxy.waitForLog((l) => l.part === 'access' && l.path === '/chat');
  expect(line).toMatchObject({ site: 'app' });
});

it('closes an HTTP/2-tunnelled WebSocket with 1001 on both sides when the proxy shuts down', async () => {
  const upstream = await startUpstream((_req, res) => res.writeHead(404).end());
  const wss = new WebSocketServer({ server: upstream.server });
  const upstreamClose = new Promise<number>((resolve) => wss.on('connection', (socket) => socket.on('close', (code) => resolve(code))));
  resources.defer(() => {
    wss.close();
    return upstream.close();
  });
  const proxy = await startProxy(table([{ name: 'app', hosts: ['app.test'], upstreams: [upstream.origin] }]));
  const session = http2.connect(`https://127.0.0.1:${proxy.server.https.port}`, { ca: proxy.ca, servername: 'app.test' });
  resources.defer(async () => void session.destroy());
  session.on('error', () => {});
  await once(session, 'remoteSettings');
  const stream = session.request({ ':method': 'CONNECT', ':protocol': 'websocket', ':scheme': 'https', ':authority': 'app.test', ':path': '/chat', 'sec-websocket-version': '13' }, { endStream: false });
  stream.on('error', () => {});
  const [headers] = (await once(stream, 'response')) as [http2.IncomingHttpHeaders];
  expect(headers[':status']).toBe(200);
  const received: Buffer[] = [];
  stream.on('data', (chunk: Buffer) => received.push(chunk));
  const closing = proxy.close();
  // The proxy's own Close frame to the client: opcode 8, status 1001.
  await expect.poll(() => [...Buffer.concat(received).subarray(0, 4)]).toEqual([0x88, expect.any(Number), 0x03, 0xe9]);
  stream.end();
  await closing;
  expect(await upstreamClose).toBe(1001);
});

it('lets Chromium open its WebSocket on the page\'s HTTP/2 connection', async () => {
  const upstream = await startUpstream((_req, res) => res.writeHead(200, { 'content-type': 'text/html' }).end('<!doctype html><title>app</title>'));
  const wss = new WebSocketServer({ server: upstream.server });
  wss.on('connection', (socket) => socket.on('message', (data) => socket.send(`echo ${String(data)}`)));
  resources.defer(() => {
    wss.close();
    return upstream.close();
  });
  const proxy = await startProxy(table([{ name: 'app', hosts: ['app.test'], upstreams: [upstream.origin] }]));
  resources.defer(() => proxy.close());
  const browser = await launchChromium({ args: ['--host-resolver-rules=MAP app.test 127.0.0.1'], ignoreHTTPSErrors: true });
  resources.defer(() => browser.close());
  const page = await browser.context.newPage();
  const origin = `https://app.test:${proxy.server.https.port}`;
  await page.goto(`${origin}/`);
  const answer = await page.evaluate(
    (url) =>
      new Promise<string>((resolve, reject) => {
        const ws = new WebSocket(url);
        ws.onopen = () => ws.send('hi');
        ws.onmessage = (event) => {
          resolve(String(event.data));
          ws.close(1000);
        };
        ws.onerror = () => reject(new Error('the WebSocket failed'));
      }),
    `wss://app.test:${proxy.server.https.port}/chat`,
  );
  expect(answer).toBe('echo hi');
  const line = await proxy.waitForLog((l) => l.part === 'access' && l.path === '/chat');
  expect(line).toMatchObject({ site: 'app', protocol: '2.0' });
}, 60_000);

it('keeps an HTTP/2 session whose WebSocket is quiet past the idle timeout, as an HTTP/1.1 WebSocket is kept', async () => {
  const upstream = await startUpstream((_req, res) => res.writeHead(404).end());
  const wss = new WebSocketServer({ server: upstream.server });
  wss.on('connection', (socket) => socket.on('message', (data, binary) => socket.send(data, { binary })));
  resources.defer(() => {
    wss.close();
    return upstream.close();
  });
  const proxy = await startProxy(table([{ name: 'app', hosts: ['app.test'], upstreams: [upstream.origin] }]), { idleTimeoutMs: '1s' });
  resources.defer(() => proxy.close());
  const session = http2.connect(`https://127.0.0.1:${proxy.server.https.port}`, { ca: proxy.ca, servername: 'app.test' });
  resources.defer(async () => void session.destroy());
  session.on('error', () => {});
  const stream = session.request({ ':method': 'CONNECT', ':protocol': 'websocket', ':scheme': 'https', ':authority': 'app.test', ':path': '/quiet', 'sec-websocket-version': '13' }, { endStream: false });
  const [headers] = (await once(stream, 'response')) as [http2.IncomingHttpHeaders];
  expect(headers[':status']).toBe(200);
  // A session opened after the WebSocket's last frame, with nothing on it, is closed by the idle timeout:
  // by then the WebSocket's session has been through its own idle timer.
  const witness = http2.connect(`https://127.0.0.1:${proxy.server.https.port}`, { ca: proxy.ca, servername: 'app.test' });
  resources.defer(async () => void witness.destroy());
  witness.on('error', () => {});
  await once(witness, 'close');
  stream.write(clientFrame(0x1, Buffer.from('still here')));
  const [reply] = (await once(stream, 'data')) as [Buffer];
  expect([...reply]).toEqual([0x81, 10, ...Buffer.from('still here')]);
  expect(session.closed || session.destroyed).toBe(false);
  stream.write(clientFrame(0x8, Buffer.from([0x03, 0xe8])));
  await once(stream, 'data');
  stream.end();
});
