/**
 * A burst of cancelled HTTP/2 streams (a browser navigating away, a page aborting its fetches) leaves
 * every session working, and each cancellation reaches the upstream as an aborted request, on every Node
 * the proxy runs on (CI runs this on Node 20 and on the image's Node).
 */
import http2 from 'node:http2';
import { expect, it } from 'vitest';
import { managed, table } from '../support/fixtures.js';

const SESSIONS = 10;
const STREAMS_PER_SESSION = 20;
const ROUNDS = 3;

const resources = managed();

function connect(port: number, ca: string): Promise<http2.ClientHttp2Session> {
  return new Promise((resolve, reject) => {
    const session = http2.connect(`https://127.0.0.1:${port}`, { ca, servername: 'app.test' });
    session.once('connect', () => resolve(session));
    session.once('error', reject);
  });
}

function get(session: http2.ClientHttp2Session, path: string): http2.ClientHttp2Stream {
  const stream = session.request({ ':path': path, ':authority': 'app.test' });
  // A cancelled stream errors on the client side; that is the point of the test, not a failure.
  stream.on('error', () => {});
  return stream;
}

function answered(stream: http2.ClientHttp2Stream): Promise<number> {
  return new Promise((resolve, reject) => {
    let status = 0;
    stream.on('response', (headers) => (status = Number(headers[':status'])));
    stream.on('error', reject);
    stream.on('end', () => resolve(status));
    stream.resume();
  });
}

it('keeps every session answering after all its in-flight streams are cancelled at once, and aborts each upstream request', async () => {
  let arrived = 0;
  let aborted = 0;
  let onCount: (() => void) | undefined;
  const counted = (check: () => boolean): Promise<void> =>
    new Promise((resolve) => {
      onCount = () => check() && resolve();
      onCount();
    });
  const upstream = await resources.upstream((req, res) => {
    if (req.url === '/probe') return void res.end('ok');
    // '/hang' never answers: the request stays in flight until the client cancels it.
    arrived++;
    res.on('close', () => {
      if (!res.writableEnded) aborted++;
      onCount?.();
    });
    onCount?.();
  });
  const proxy = await resources.proxy(table([{ name: 'app', hosts: ['app.test'], upstreams: [upstream.origin] }]));
  const sessions = await Promise.all(Array.from({ length: SESSIONS }, () => connect(proxy.server.https.port, proxy.ca)));
  resources.defer(async () => sessions.forEach((s) => s.destroy()));

  for (let round = 1; round <= ROUNDS; round++) {
    const inFlight = sessions.flatMap((s) => Array.from({ length: STREAMS_PER_SESSION }, () => get(s, '/hang')));
    const target = round * SESSIONS * STREAMS_PER_SESSION;
    await counted(() => arrived >= target);
    for (const stream of inFlight) stream.close(http2.constants.NGHTTP2_CANCEL);
    await counted(() => aborted >= target);
    const probes = await Promise.all(sessions.map((s) => answered(get(s, '/probe'))));
    expect(probes).toEqual(sessions.map(() => 200));
  }
  expect(sessions.every((s) => !s.closed && !s.destroyed)).toBe(true);
});
