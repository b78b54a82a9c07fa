import { once } from 'node:events';
import http from 'node:http';
import type tls from 'node:tls';
import { expect, it } from 'vitest';
import WebSocket, { WebSocketServer } from 'ws';
import { managed, startProxy, startUpstream, table, writeRoutes, type Proxy } from '../support/fixtures.js';

const resources = managed();

async function echoUpstream(): Promise<{ origin: string; serverSideClose: Promise<number>; hostSeen: Promise<string | undefined> }> {
  // Plain HTTP requests never reach this upstream in these tests.
  const upstream = await startUpstream((_req, res) => res.writeHead(404).end());
  const wss = new WebSocketServer({ server: upstream.server });
  let closeCode!: (code: number) => void;
  let host!: (h: string | undefined) => void;
  const serverSideClose = new Promise<number>((resolve) => (closeCode = resolve));
  const hostSeen = new Promise<string | undefined>((resolve) => (host = resolve));
  wss.on('connection', (socket, req) => {
    host(req.headers.host);
    socket.on('message', (data, binary) => socket.send(data, { binary }));
    socket.on('close', (code) => closeCode(code));
  });
  resources.defer(() => {
    wss.close();
    return upstream.close();
  });
  return { origin: upstream.origin, serverSideClose, hostSeen };
}

/** ws hands TLS options to tls.connect, though its types do not list them. */
function wss(proxy: Proxy, path: string, host: string): WebSocket {
  const options: WebSocket.ClientOptions & tls.ConnectionOptions = { ca: proxy.ca, servername: 'app.test', headers: { host } };
  return new WebSocket(`wss://127.0.0.1:${proxy.server.https.port}${path}`, options);
}

function connect(proxy: Proxy): WebSocket {
  return wss(proxy, '/chat', 'app.test');
}

it('tunnels a WebSocket through the HTTPS listener, Host preserved', async () => {
  const upstream = await echoUpstream();
  const proxy = await startProxy(table([{ name: 'app', hosts: ['app.test'], upstreams: [upstream.origin] }]));
  resources.defer(() => proxy.close());
  const ws = connect(proxy);
  await once(ws, 'open');
  ws.send('hello');
  const [reply] = await once(ws, 'message');
  expect(String(reply)).toBe('hello');
  expect(await upstream.hostSeen).toBe('app.test');
  ws.close(1000);
  await once(ws, 'close');
  const line = await proxy.waitForLog((l) => l.part === 'access' && l.path === '/chat');
  expect(line).toMatchObject({ status: 101, site: 'app' });
});

it('closes open WebSockets with 1001 on both sides when the proxy shuts down', async () => {
  const upstream = await echoUpstream();
  const proxy = await startProxy(table([{ name: 'app', hosts: ['app.test'], upstreams: [upstream.origin] }]));
  const ws = connect(proxy);
  await once(ws, 'open');
  const closed = once(ws, 'close');
  await proxy.close();
  const [code] = await closed;
  expect(code).toBe(1001);
  expect(await upstream.serverSideClose).toBe(1001);
});

it('refuses a WebSocket for an unknown host with 404', async () => {
  const proxy = await startProxy(table([{ name: 'app', hosts: ['app.test'], upstreams: ['http://127.0.0.1:9'] }]));
  resources.defer(() => proxy.close());
  const ws = wss(proxy, '/', 'other.test');
  const [, res] = (await once(ws, 'unexpected-response')) as [unknown, http.IncomingMessage];
  expect(res.statusCode).toBe(404);
  // ws reports its own aborted handshake as an error; that is the expected outcome here.
  ws.on('error', () => {});
  res.destroy();
});

it('keeps WebSockets to the old version open across a switch, then closes them with 1001 after the drain time', async () => {
  const v1 = await echoUpstream();
  const v2 = await echoUpstream();
  const routes = (generation: number, version: string, upstream: string) =>
    table([{ name: 'app', hosts: ['app.test'], upstreams: [upstream], version }], generation);
  const proxy = await startProxy(routes(1, 'v1', v1.origin), { websocketDrainMs: '400ms' });
  resources.defer(() => proxy.close());
  const old = connect(proxy);
  await once(old, 'open');
  const oldClosed = once(old, 'close');

  await writeRoutes(proxy.config.routesPath, routes(2, 'v2', v2.origin));
  await proxy.waitForLog((l) => l.msg === 'routing table loaded' && l.generation === 2);
  // Still open and still on v1 after the switch.
  old.send('still here');
  expect(String((await once(old, 'message'))[0])).toBe('still here');
  const fresh = connect(proxy);
  await once(fresh, 'open');
  expect(await v2.hostSeen).toBe('app.test');

  const [code] = await oldClosed;
  expect(code).toBe(1001);
  expect(fresh.readyState).toBe(WebSocket.OPEN);
  fresh.close();
});
