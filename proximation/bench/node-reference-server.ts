/**
 * Entry point of the Node reference rows, run as its own process: what Node itself costs before any
 * proxy logic, so that every run shows which targets a Node server can reach at all on this machine.
 * All run on the same Node with the benchmark's self-signed certificate, and all but `raw` on the server
 * proximation uses (`http2.createSecureServer` with HTTP/1.1 allowed, ALPN h2 and http/1.1):
 * - `BENCH_NODE_MODE=answer`: answers both benchmark paths itself (100 B and 64 KiB from memory), no
 *   upstream at all: the floor for any proxy built on Node's HTTP and TLS stack.
 * - `BENCH_NODE_MODE=undici`: forwards to BENCH_TARGET through one undici `Pool` with `Pool.stream()`,
 *   passing the status, content type and length, and nothing else: the minimal proxy the foundation
 *   issue measured (no routing, no header rewriting, no logging, no metrics).
 * - `BENCH_NODE_MODE=sockets`: forwards the same way over keep-alive plain sockets, reading only the
 *   status and Content-Length of the upstream's answers and checking nothing: the least a Node proxy on
 *   Node's HTTP server can spend on a forwarded request (proximation's own client, upstream-connection.ts,
 *   does the same work plus strict parsing, every header, any framing, timeouts and back-pressure). Not
 *   a proxy to use: it is only correct for this benchmark's upstream.
 * - `BENCH_NODE_MODE=raw`: the same upstream side behind HTTP/1.1 read and written by hand on Node's TLS
 *   sockets, without Node's HTTP server (no HTTP/2): the least any Node process can spend proxying a
 *   request over TLS, whatever it is built on. Even less of a proxy: it takes every read for one request.
 * Environment (validated here, exit code 2 with a message when wrong): BENCH_NODE_MODE, BENCH_HTTPS_PORT,
 * BENCH_TARGET (an http origin on 127.0.0.1; all but `answer`), BENCH_TLS_CERT, BENCH_TLS_KEY (PEM files).
 * Unknown paths in `answer` mode answer 404, upstream errors in `undici` mode 502; `sockets` and `raw`
 * just drop the upstream connection.
 */
import { readFileSync } from 'node:fs';
import { createSecureServer, type Http2ServerRequest, type Http2ServerResponse } from 'node:http2';
import { connect, type Socket } from 'node:net';
import { createServer as createTlsServer } from 'node:tls';
import { Pool } from 'undici';
import { LARGE_BYTES, LARGE_PATH, SMALL_BYTES, SMALL_PATH } from './upstream-paths.js';

type Handler = (req: Http2ServerRequest, res: Http2ServerResponse) => void;

function fail(message: string): never {
  process.stderr.write(`node reference server: ${message}\n`);
  process.exit(2);
}

function required(name: string): string {
  const value = process.env[name];
  if (value === undefined || value === '') fail(`environment variable ${name} must be set`);
  return value;
}

function answering(): Handler {
  const bodies = new Map([
    [SMALL_PATH, Buffer.alloc(SMALL_BYTES, 'x')],
    [LARGE_PATH, Buffer.alloc(LARGE_BYTES, 'x')],
  ]);
  return (req, res) => {
    const body = bodies.get(req.url);
    if (body === undefined) {
      res.writeHead(404).end();
      return;
    }
    res.writeHead(200, { 'content-type': 'text/plain', 'content-length': body.length }).end(body);
  };
}

function checkedTarget(target: string): { port: number } {
  const match = /^http:\/\/127\.0\.0\.1:(\d+)$/.exec(target);
  if (match === null) fail(`BENCH_TARGET=${target} is not http://127.0.0.1:<port>`);
  return { port: Number(match[1]) };
}

function forwarding(target: string): Handler {
  checkedTarget(target);
  const pool = new Pool(target, { pipelining: 1 });
  return (req, res) => {
    pool.stream(
      { path: req.url, method: 'GET' },
      ({ statusCode, headers }) => {
        const passed: Record<string, string> = {};
        for (const name of ['content-type', 'content-length']) {
          const value = headers[name];
          if (typeof value === 'string') passed[name] = value;
        }
        return res.writeHead(statusCode, passed);
      },
      (err) => {
        if (err === null) return;
        if (res.headersSent) res.destroy();
        else res.writeHead(502).end();
      },
    );
  };
}

/** One exchange with the upstream: the head's status, type and length, then the body, last piece flagged. */
type Relay = (
  method: string,
  path: string,
  host: string,
  onHead: (status: number, type: string, length: number) => void,
  onBody: (chunk: Buffer, last: boolean) => void,
) => void;

interface UpstreamSocket {
  readonly socket: Socket;
  onData: (data: Buffer) => void;
}

/**
 * Keep-alive plain sockets to the upstream, all reading into one buffer (`onread`, as proximation's
 * client does), one response at a time per socket; the head is assumed to arrive in one read, as it does
 * from nginx. A socket the upstream closed while idle (nginx's keepalive_timeout runs out between
 * rounds) leaves the idle list.
 */
function relayOnSockets(target: string): Relay {
  const { port } = checkedTarget(target);
  const idle: UpstreamSocket[] = [];
  const buffer = Buffer.allocUnsafe(64 * 1024);
  const open = (): UpstreamSocket => {
    const upstream: UpstreamSocket = {
      socket: connect({
        host: '127.0.0.1',
        port,
        noDelay: true,
        onread: {
          buffer,
          callback: (n) => {
            upstream.onData(buffer.subarray(0, n));
            return true;
          },
        },
      }),
      onData: () => {},
    };
    upstream.socket.on('error', () => upstream.socket.destroy());
    upstream.socket.on('close', () => {
      const at = idle.indexOf(upstream);
      if (at !== -1) idle.splice(at, 1);
    });
    return upstream;
  };
  return (method, path, host, onHead, onBody) => {
    const upstream = idle.pop() ?? open();
    let remaining = -1;
    upstream.onData = (data) => {
      let body = data;
      if (remaining === -1) {
        const end = data.indexOf('\r\n\r\n');
        const head = data.toString('latin1', 0, end);
        remaining = Number(/\r\ncontent-length: *(\d+)/i.exec(head)?.[1] ?? 0);
        onHead(Number(head.slice(9, 12)), /\r\ncontent-type: *([^\r]*)/i.exec(head)?.[1] ?? 'text/plain', remaining);
        body = data.subarray(end + 4);
      }
      remaining -= body.length;
      if (remaining <= 0) idle.push(upstream);
      // A copy: the next read reuses the buffer.
      onBody(Buffer.from(body), remaining <= 0);
    };
    upstream.socket.write(`${method} ${path} HTTP/1.1\r\nhost: ${host}\r\n\r\n`, 'latin1');
  };
}

function forwardingOnSockets(target: string): Handler {
  const relay = relayOnSockets(target);
  return (req, res) => {
    relay(
      req.method,
      req.url,
      req.headers.host ?? req.headers[':authority'] ?? '',
      (status, type, length) => res.writeHead(status, { 'content-type': type, 'content-length': length }),
      (chunk, last) => (last ? res.end(chunk) : res.write(chunk)),
    );
  };
}

/**
 * HTTP/1.1 straight on TLS sockets, without Node's HTTP server: each read from a client is taken to be
 * one whole request head without a body (what wrk sends), and a response that arrives in one read
 * leaves in one write. `Connection: close` in the request closes the connection after the response.
 */
function serveRaw(relay: Relay, tlsOptions: { cert: Buffer; key: Buffer }, port: number): void {
  let date = new Date().toUTCString();
  setInterval(() => (date = new Date().toUTCString()), 1000).unref();
  createTlsServer({ ...tlsOptions, ALPNProtocols: ['http/1.1'] }, (client) => {
    client.setNoDelay(true);
    client.on('error', () => client.destroy());
    client.on('data', (data: Buffer) => {
      const head = data.toString('latin1', 0, data.indexOf('\r\n\r\n'));
      const [method = '', path = ''] = head.split(' ', 2);
      const close = /\r\nconnection: *close/i.test(head);
      let pending = '';
      relay(
        method,
        path,
        /\r\nhost: *([^\r]*)/i.exec(head)?.[1] ?? '',
        (status, type, length) => {
          pending = `HTTP/1.1 ${status} \r\ncontent-type: ${type}\r\ncontent-length: ${length}\r\ndate: ${date}\r\n${close ? 'connection: close\r\n' : ''}\r\n`;
        },
        (chunk, last) => {
          client.write(pending === '' ? chunk : Buffer.concat([Buffer.from(pending, 'latin1'), chunk]));
          pending = '';
          if (last && close) client.end();
        },
      );
    });
  }).listen(port, '127.0.0.1');
}

const mode = required('BENCH_NODE_MODE');
const port = Number(required('BENCH_HTTPS_PORT'));
if (!Number.isInteger(port) || port < 1 || port > 65535) fail(`BENCH_HTTPS_PORT=${port} is not a port`);
const tlsOptions = { cert: readFileSync(required('BENCH_TLS_CERT')), key: readFileSync(required('BENCH_TLS_KEY')) };
let handler: Handler;
if (mode === 'raw') serveRaw(relayOnSockets(required('BENCH_TARGET')), tlsOptions, port);
else {
  if (mode === 'answer') handler = answering();
  else if (mode === 'undici') handler = forwarding(required('BENCH_TARGET'));
  else if (mode === 'sockets') handler = forwardingOnSockets(required('BENCH_TARGET'));
  else fail(`BENCH_NODE_MODE=${mode} is not answer, undici, sockets or raw`);
  createSecureServer({ allowHTTP1: true, ...tlsOptions }, handler).listen(port, '127.0.0.1');
}
