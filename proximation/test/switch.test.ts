/**
 * The zero-drop switch: under a steady load of requests and with WebSockets open, a new version is
 * registered and activated, then rolled back. No request fails, requests sent after the switch reach the
 * new version, and WebSockets to the old version stay open.
 */
import { once } from 'node:events';
import https from 'node:https';
import type tls from 'node:tls';
import { addSite, registerVersion, rollback, updateRoutingTableFile } from '@proximation/shared';
import { expect, it } from 'vitest';
import WebSocket, { WebSocketServer } from 'ws';
import { managed, startUpstream, type Proxy } from './support/fixtures.js';

const resources = managed();

/** An upstream that answers its own name, slowly enough that requests are in flight at the switch. */
async function version(name: string): Promise<string> {
  const upstream = await startUpstream((_req, res) => setTimeout(() => res.end(name), 5));
  const wss = new WebSocketServer({ server: upstream.server });
  wss.on('connection', (socket) => socket.on('message', (data) => socket.send(`${name}:${String(data)}`)));
  resources.defer(() => {
    wss.close();
    return upstream.close();
  });
  return upstream.origin;
}

function openSocket(proxy: Proxy): Promise<WebSocket> {
  const options: WebSocket.ClientOptions & tls.ConnectionOptions = { ca: proxy.ca, servername: 'app.test', headers: { host: 'app.test' } };
  const ws = new WebSocket(`wss://127.0.0.1:${proxy.server.https.port}/`, options);
  return once(ws, 'open').then(() => ws);
}

async function echo(ws: WebSocket, text: string): Promise<string> {
  ws.send(text);
  return String((await once(ws, 'message'))[0]);
}

interface Load {
  seen: string[];
  failures: string[];
  stop(): Promise<void>;
  /** Resolves once `n` more responses than now have arrived. */
  next(n: number): Promise<void>;
}

/** `clients` loops of back-to-back keep-alive requests, recording every answer and every failure. */
function steadyLoad(proxy: Proxy, clients: number): Load {
  const agent = new https.Agent({ keepAlive: true, ca: proxy.ca, servername: 'app.test', maxSockets: clients });
  const seen: string[] = [];
  const failures: string[] = [];
  const waiters: { count: number; resolve: () => void }[] = [];
  let running = true;
  const one = (): Promise<void> =>
    new Promise((resolve) => {
      const req = https.get({ host: '127.0.0.1', port: proxy.server.https.port, path: '/', headers: { host: 'app.test' }, agent }, (res) => {
        let body = '';
        res.on('data', (c: Buffer) => (body += c.toString()));
        res.on('end', () => {
          if (res.statusCode === 200) seen.push(body);
          else failures.push(`${res.statusCode}: ${body}`);
          for (const w of waiters.filter((w) => seen.length >= w.count)) {
            waiters.splice(waiters.indexOf(w), 1);
            w.resolve();
          }
          resolve();
        });
      });
      req.on('error', (err) => {
        failures.push(err.message);
        resolve();
      });
    });
  const loops = Array.from({ length: clients }, async () => {
    while (running) await one();
  });
  return {
    seen,
    failures,
    next: (n) => new Promise((resolve) => waiters.push({ count: seen.length + n, resolve })),
    stop: async () => {
      running = false;
      await Promise.all(loops);
      agent.destroy();
    },
  };
}

it('switches and rolls back under load without failing a request or dropping a WebSocket', { timeout: 30_000 }, async () => {
  const v1 = await version('v1');
  const v2 = await version('v2');
  const proxy = await resources.proxy({ schemaVersion: 1, generation: 0, sites: [] });
  const routes = proxy.config.routesPath;
  await updateRoutingTableFile(routes, (t) =>
    registerVersion(addSite(t, { name: 'app', hosts: ['app.test'] }), { site: 'app', version: 'v1', upstreams: [v1], registeredAt: new Date(), activate: true }),
  );
  await proxy.waitForLog((l) => l.msg === 'routing table loaded' && l.generation === 1);

  const ws = await openSocket(proxy);
  expect(await echo(ws, 'hello')).toBe('v1:hello');
  const load = steadyLoad(proxy, 8);
  await load.next(50);

  await updateRoutingTableFile(routes, (t) => registerVersion(t, { site: 'app', version: 'v2', upstreams: [v2], registeredAt: new Date(), activate: true }));
  await proxy.waitForLog((l) => l.msg === 'routing table loaded' && l.generation === 2);
  const switchedAt = load.seen.length;
  await load.next(100);
  // Requests in flight at the switch may still answer v1; after them, only v2.
  expect(load.seen.slice(switchedAt + 8)).not.toContain('v1');
  expect(await echo(ws, 'after switch')).toBe('v1:after switch');
  const fresh = await openSocket(proxy);
  expect(await echo(fresh, 'new')).toBe('v2:new');

  await updateRoutingTableFile(routes, (t) => rollback(t, 'app'));
  await proxy.waitForLog((l) => l.msg === 'routing table loaded' && l.generation === 3);
  const rolledBackAt = load.seen.length;
  await load.next(100);
  expect(load.seen.slice(rolledBackAt + 8)).not.toContain('v2');

  await load.stop();
  expect(load.failures).toEqual([]);
  expect(ws.readyState).toBe(WebSocket.OPEN);
  expect(fresh.readyState).toBe(WebSocket.OPEN);
  ws.close();
  fresh.close();
});
