/**
 * Raw HTTP/1.1 on both sides of the proxy, for the tests that must see exact bytes: an upstream that
 * records every request exactly as it arrived and answers with bytes the test writes, and a client
 * that sends bytes the test writes over TLS and collects what comes back. `messageLength` finds where
 * one message ends (Content-Length, chunked with trailers, or a head alone): enough to split what a
 * test sends, not a parser to trust.
 */
import { once } from 'node:events';
import net, { type AddressInfo } from 'node:net';
import tls from 'node:tls';
import type { Proxy } from './fixtures.js';

export interface RawUpstream {
  origin: string;
  /** Every complete request received, in order, as latin1 text (head and body). */
  requests: string[];
  /** Connections accepted so far. */
  connections(): number;
  close(): Promise<void>;
}

/**
 * An upstream on loopback that calls `answer` with each complete request on a connection (its text and
 * its index among the connection's requests); `answer` writes whatever it likes to the socket.
 */
export async function startRawUpstream(answer: (request: string, socket: net.Socket, n: number) => void): Promise<RawUpstream> {
  const requests: string[] = [];
  const sockets = new Set<net.Socket>();
  let count = 0;
  const server = net.createServer((socket) => {
    count++;
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => {});
    let buffered = '';
    let n = 0;
    socket.on('data', (data: Buffer) => {
      buffered += data.toString('latin1');
      for (let length = messageLength(buffered); length !== -1; length = messageLength(buffered)) {
        const request = buffered.slice(0, length);
        buffered = buffered.slice(length);
        requests.push(request);
        answer(request, socket, n++);
      }
    });
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return {
    origin: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    requests,
    connections: () => count,
    close: async () => {
      for (const s of sockets) s.destroy();
      await new Promise((resolve) => server.close(resolve));
    },
  };
}

/**
 * The length of the first complete message at the start of `text`, or -1 while it is incomplete (or,
 * for a response without framing, runs to the close). A request without framing has no body.
 */
export function messageLength(text: string, response = false): number {
  const headEnd = text.indexOf('\r\n\r\n');
  if (headEnd === -1) return -1;
  const head = text.slice(0, headEnd).toLowerCase();
  const bodyStart = headEnd + 4;
  const status = response ? Number(head.slice(9, 12)) : 0;
  if (response && (status < 200 || status === 204 || status === 304)) return bodyStart;
  if (/\r\ntransfer-encoding:[^\r]*chunked/.test(head)) {
    for (let at = bodyStart; ; ) {
      const lineEnd = text.indexOf('\r\n', at);
      if (lineEnd === -1) return -1;
      const size = parseInt(text.slice(at, lineEnd), 16);
      if (size === 0) {
        const end = text.indexOf('\r\n\r\n', lineEnd - 2);
        return end === -1 ? -1 : end + 4;
      }
      at = lineEnd + 2 + size + 2;
      if (at > text.length) return -1;
    }
  }
  const length = /\r\ncontent-length: *(\d+)/.exec(head);
  if (length !== null) return text.length >= bodyStart + Number(length[1]) ? bodyStart + Number(length[1]) : -1;
  return response ? -1 : bodyStart;
}

/** The responses in `text`, interim ones included, each as its text; what is incomplete at the end is left out. */
export function responses(text: string): string[] {
  const out: string[] = [];
  for (let length = messageLength(text, true); length !== -1; length = messageLength(text, true)) {
    out.push(text.slice(0, length));
    text = text.slice(length);
  }
  return out;
}

/**
 * Sends `bytes` to the proxy's HTTPS port over TLS (SNI `host`, ALPN http/1.1, more in `options`: a
 * session to resume, say) and resolves with all that came back once `done` says so, or once the proxy
 * closed the connection.
 */
export async function rawHttps(
  proxy: Proxy,
  host: string,
  bytes: string | Buffer,
  done: (received: string) => boolean,
  timeoutMs = 10_000,
  options: tls.ConnectionOptions = {},
): Promise<string> {
  const socket = tls.connect({ host: '127.0.0.1', port: proxy.server.https.port, servername: host, ca: proxy.ca, ALPNProtocols: ['http/1.1'], ...options });
  try {
    await once(socket, 'secureConnect');
    socket.write(bytes);
    return await new Promise((resolve, reject) => {
      let received = '';
      const timer = setTimeout(() => reject(new Error(`no complete answer within ${timeoutMs} ms; got ${JSON.stringify(received)}`)), timeoutMs);
      const finish = (): void => {
        clearTimeout(timer);
        resolve(received);
      };
      socket.on('data', (data: Buffer) => {
        received += data.toString('latin1');
        if (done(received)) finish();
      });
      socket.on('close', finish);
      socket.on('error', () => {});
    });
  } finally {
    socket.destroy();
  }
}

/** `done` for `rawHttps`: once `count` final (non-1xx) responses are complete. */
export function finalResponses(count = 1): (received: string) => boolean {
  return (received) => responses(received).filter((r) => !r.startsWith('HTTP/1.1 1')).length >= count;
}
