/**
 * Slow read against the buffer caps: HTTP/2 clients that open many streams for large responses and
 * never read them make the proxy hold at most the per-connection and per-address caps of response bytes
 * (the gauge, and the limit counter), while a client from another address gets its responses at once;
 * a request from the slow address waits until the slow clients go away, and then everything is released.
 */
import http2 from 'node:http2';
import net from 'node:net';
import tls from 'node:tls';
import { expect, it } from 'vitest';
import { loadConfig } from '../../src/config.js';
import { managed, table, type Proxy } from '../support/fixtures.js';
import { startH2Upstream } from '../support/h2-upstream.js';
import { scrape, value } from '../support/metrics.js';
import { waitUntil, within } from '../support/process.js';

const resources = managed();
const MiB = 1024 * 1024;
const RESPONSE_BYTES = 512 * 1024;

function session(p: Proxy, localAddress = '127.0.0.1'): http2.ClientHttp2Session {
  const port = p.server.https.port;
  const s = http2.connect(`https://127.0.0.1:${port}`, {
    createConnection: () => tls.connect({ socket: net.connect({ host: '127.0.0.1', port, localAddress }), servername: 'app.test', ca: p.ca, ALPNProtocols: ['h2'] }),
  });
  s.on('error', () => {});
  resources.defer(async () => void s.destroy());
  return s;
}

/** A GET that is read to its end: the status and the body's length. */
function fetchAll(s: http2.ClientHttp2Session, path: string): Promise<{ status: number; bytes: number }> {
  return new Promise((resolve, reject) => {
    const stream = s.request({ ':path': path, ':authority': 'app.test' });
    let status = 0;
    let bytes = 0;
    stream.on('response', (h) => (status = Number(h[':status'])));
    stream.on('data', (chunk: Buffer) => (bytes += chunk.length));
    stream.on('end', () => resolve({ status, bytes }));
    stream.on('error', reject);
  });
}

async function gauge(p: Proxy): Promise<number> {
  return value((await scrape(p)).samples, 'proximation_client_buffered_bytes') ?? NaN;
}

/** The gauge once it has stopped moving (two scrapes 200 ms apart agree): what the slow clients hold. */
async function steadyGauge(p: Proxy): Promise<number> {
  let last = await gauge(p);
  for (;;) {
    await new Promise((resolve) => setTimeout(resolve, 200));
    const now = await gauge(p);
    if (now === last) return now;
    last = now;
  }
}

async function limitHits(p: Proxy, limit: string): Promise<number> {
  return value((await scrape(p)).samples, 'proximation_limit_hits_total', { limit }) ?? NaN;
}

// Over either kind of upstream pool: each pauses its upstream when the exchange runs out of credit.
it.each(['http', 'h2c'] as const)('holds at most the per-connection and per-address caps for HTTP/2 clients that do not read, and serves other addresses meanwhile (%s upstream)', async (protocol) => {
  const u = await resources.answeringUpstream(protocol, () => [200, 'x'.repeat(RESPONSE_BYTES)]);
  const p = await resources.proxy(table([{ name: 'app', hosts: ['app.test'], upstreams: [u.origin] }]), {
    maxBufferedBytesPerConnection: '1MiB',
    maxBufferedBytesPerAddress: '2MiB',
  });

  // One session, 30 streams never read: each would hold about 192 KiB in the process without the cap.
  const slow = [session(p)];
  const open = (s: http2.ClientHttp2Session, n: number): void => {
    for (let i = 0; i < n; i++) s.request({ ':path': `/big-${i}`, ':authority': 'app.test' }).on('error', () => {});
  };
  open(slow[0]!, 30);
  await waitUntil(async () => (await limitHits(p, 'buffered_bytes_per_connection')) > 0, 'the connection cap to act');
  await waitUntil(async () => (await gauge(p)) > 0.5 * MiB, 'the slow session to fill its buffers');
  expect(await steadyGauge(p)).toBeLessThanOrEqual(1 * MiB);

  // Three such sessions from the same address: the address cap holds.
  slow.push(session(p), session(p));
  open(slow[1]!, 30);
  open(slow[2]!, 30);
  await waitUntil(async () => (await limitHits(p, 'buffered_bytes_per_address')) > 0, 'the address cap to act');
  await waitUntil(async () => (await gauge(p)) > 1.25 * MiB, 'the slow sessions to fill the address budget');
  expect(await steadyGauge(p)).toBeLessThanOrEqual(2 * MiB);

  // Another address is not held back.
  const other = await within(fetchAll(session(p, '127.0.0.2'), '/other'), 10_000, 'a response for another address');
  expect(other).toEqual({ status: 200, bytes: RESPONSE_BYTES });

  // A reading client of the slow address waits for credit; when the slow clients go away, it gets its response.
  const fromSlowAddress = fetchAll(session(p), '/same-address');
  let answered = false;
  void fromSlowAddress.then(() => (answered = true));
  const hits = await limitHits(p, 'buffered_bytes_per_address');
  await waitUntil(async () => (await limitHits(p, 'buffered_bytes_per_address')) > hits, 'the new request to wait for its address');
  expect(answered).toBe(false);
  for (const s of slow) s.destroy();
  expect(await within(fromSlowAddress, 10_000, 'the waiting request once the slow clients left')).toEqual({ status: 200, bytes: RESPONSE_BYTES });
  await waitUntil(async () => (await gauge(p)) === 0, 'every buffered byte to be released');
}, 60_000);

it('leaves an HTTP/2 upstream session that refuses new streams, its memory full of responses held for a slow client, and answers others on a new one', async () => {
  // Node's default session memory is 10 MB; at 1 MB a few held 256 KiB answers fill it.
  const u = await startH2Upstream((stream, headers) => {
    stream.respond({ ':status': 200 });
    stream.end(String(headers[':path']).startsWith('/big') ? Buffer.alloc(256 * 1024, 'x') : 'small');
  }, { maxSessionMemory: 1 });
  resources.defer(() => u.close());
  const p = await resources.proxy(table([{ name: 'app', hosts: ['app.test'], upstreams: [u.origin] }]));
  const slow = session(p);
  for (let i = 0; i < 6; i++) slow.request({ ':path': `/big-${i}`, ':authority': 'app.test' }).on('error', () => {});
  // The first session refused a stream (ENHANCE_YOUR_CALM): the pool opened another for it.
  await waitUntil(() => u.sessions() > 1, 'a second upstream session');
  // Another client, as a GET: answered, on a session opened after the full one refused.
  expect(await within(fetchAll(session(p, '127.0.0.2'), '/other'), 10_000, 'an answer for another client')).toEqual({ status: 200, bytes: 5 });
  expect(u.streams.at(-1)).toMatchObject({ session: u.sessions() - 1, headers: expect.objectContaining({ ':path': '/other' }) });
}, 60_000);

it('holds at most the address cap for HTTP/1.1 connections that do not read their responses', async () => {
  const u = await resources.upstream((_req, res) => res.end(Buffer.alloc(4 * MiB, 'x')));
  const p = await resources.proxy(table([{ name: 'app', hosts: ['app.test'], upstreams: [u.origin] }]), { maxBufferedBytesPerAddress: '1MiB' });
  // 20 keep-alive connections, each asking for 4 MiB and reading none of it (the socket is paused).
  const sockets = Array.from({ length: 20 }, () => {
    const socket = tls.connect({ host: '127.0.0.1', port: p.server.https.port, servername: 'app.test', ca: p.ca, ALPNProtocols: ['http/1.1'] });
    socket.on('error', () => {});
    resources.defer(async () => void socket.destroy());
    socket.write('GET /big HTTP/1.1\r\nHost: app.test\r\n\r\n');
    socket.pause();
    return socket;
  });
  await waitUntil(async () => (await limitHits(p, 'buffered_bytes_per_address')) > 0, 'the address cap to act');
  await waitUntil(async () => (await gauge(p)) > 0.5 * MiB, 'the connections to fill the address budget');
  expect(await steadyGauge(p)).toBeLessThanOrEqual(1 * MiB);
  for (const socket of sockets) socket.destroy();
  await waitUntil(async () => (await gauge(p)) === 0, 'every buffered byte to be released');
}, 60_000);

it('takes the caps in bytes or binary units, 8 MiB and 32 MiB by default, and refuses less than 1 MiB naming the setting', () => {
  expect(loadConfig({}, {})).toMatchObject({ maxBufferedBytesPerConnection: 8 * MiB, maxBufferedBytesPerAddress: 32 * MiB });
  const given = loadConfig({ 'max-buffered-bytes-per-connection': '2048KiB' }, { PROXIMATION_MAX_BUFFERED_BYTES_PER_ADDRESS: String(3 * MiB) });
  expect(given).toMatchObject({ maxBufferedBytesPerConnection: 2 * MiB, maxBufferedBytesPerAddress: 3 * MiB });
  expect(loadConfig({}, { PROXIMATION_MAX_BUFFERED_BYTES_PER_ADDRESS: '1GiB' }).maxBufferedBytesPerAddress).toBe(1024 * MiB);
  for (const bad of ['1023KiB', '1048575', '8MB', '8 MiB', '-1', '0x100000']) {
    expect(() => loadConfig({}, { PROXIMATION_MAX_BUFFERED_BYTES_PER_CONNECTION: bad }), bad).toThrow(
      expect.objectContaining({ code: 'ERR_CONFIG_INVALID', message: expect.stringContaining(`PROXIMATION_MAX_BUFFERED_BYTES_PER_CONNECTION=${JSON.stringify(bad)} is not valid: expected a size of at least 1MiB`) }),
    );
  }
});
