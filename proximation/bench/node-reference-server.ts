/**
 * Entry point of the two Node reference rows, run as its own process: what Node itself costs before any
 * proxy logic, so that every run shows which targets a Node server can reach at all on this machine.
 * Both are the server proximation uses (`http2.createSecureServer` with HTTP/1.1 allowed, ALPN h2 and
 * http/1.1), on the same Node, with the benchmark's self-signed certificate:
 * - `BENCH_NODE_MODE=answer`: answers both benchmark paths itself (100 B and 64 KiB from memory), no
 *   upstream at all: the floor for any proxy built on Node's HTTP and TLS stack.
 * - `BENCH_NODE_MODE=undici`: forwards to BENCH_TARGET through one undici `Pool` with `Pool.stream()`,
 *   passing the status, content type and length, and nothing else: the minimal proxy the foundation
 *   issue measured (no routing, no header rewriting, no logging, no metrics).
 * - `BENCH_NODE_MODE=sockets`: forwards the same way over keep-alive plain sockets, reading only the
 *   status and Content-Length of the upstream's answers and checking nothing: the least any Node proxy
 *   can spend on a forwarded request (proximation's own client, upstream-connection.ts, does the same
 *   work plus strict parsing, every header, any framing, timeouts and back-pressure). Not a proxy to
 *   use: it is only correct for this benchmark's upstream.
 * Environment (validated here, exit code 2 with a message when wrong): BENCH_NODE_MODE, BENCH_HTTPS_PORT,
 * BENCH_TARGET (an http origin on 127.0.0.1; `undici` and `sockets` only), BENCH_TLS_CERT, BENCH_TLS_KEY (PEM files).
 * Upstream errors answer 502; unknown paths in `answer` mode 404.
 */
import { readFileSync } from 'node:fs';
import { createSecureServer, type Http2ServerRequest, type Http2ServerResponse } from 'node:http2';
import { connect, type Socket } from 'node:net';
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

/**
 * One response at a time per socket; the head is assumed to arrive in one read, as it does from nginx.
 * A socket the upstream closed while idle (nginx's keepalive_timeout runs out between rounds) leaves
 * the idle list.
 */
function forwardingOnSockets(target: string): Handler {
  const { port } = checkedTarget(target);
  const idle: Socket[] = [];
  const open = (): Socket => {
    const socket = connect({ host: '127.0.0.1', port, noDelay: true });
    socket.on('error', () => socket.destroy());
    socket.on('close', () => {
      const at = idle.indexOf(socket);
      if (at !== -1) idle.splice(at, 1);
    });
    return socket;
  };
  return (req, res) => {
    const socket = idle.pop() ?? open();
    let remaining = -1;
    const onData = (data: Buffer): void => {
      let body = data;
      if (remaining === -1) {
        const end = data.indexOf('\r\n\r\n');
        const head = data.toString('latin1', 0, end);
        const length = /\r\ncontent-length: *(\d+)/i.exec(head);
        const type = /\r\ncontent-type: *([^\r]*)/i.exec(head);
        remaining = Number(length?.[1] ?? 0);
        res.writeHead(Number(head.slice(9, 12)), { 'content-type': type?.[1] ?? 'text/plain', 'content-length': remaining });
        body = data.subarray(end + 4);
      }
      remaining -= body.length;
      if (remaining > 0) {
        res.write(body);
        return;
      }
      socket.off('data', onData);
      idle.push(socket);
      res.end(body);
    };
    socket.on('data', onData);
    socket.write(`${req.method} ${req.url} HTTP/1.1\r\nhost: ${req.headers.host ?? req.headers[':authority']}\r\n\r\n`, 'latin1');
  };
}

const mode = required('BENCH_NODE_MODE');
const port = Number(required('BENCH_HTTPS_PORT'));
if (!Number.isInteger(port) || port < 1 || port > 65535) fail(`BENCH_HTTPS_PORT=${port} is not a port`);
let handler: Handler;
if (mode === 'answer') handler = answering();
else if (mode === 'undici') handler = forwarding(required('BENCH_TARGET'));
else if (mode === 'sockets') handler = forwardingOnSockets(required('BENCH_TARGET'));
else fail(`BENCH_NODE_MODE=${mode} is not answer, undici or sockets`);

createSecureServer(
  { allowHTTP1: true, cert: readFileSync(required('BENCH_TLS_CERT')), key: readFileSync(required('BENCH_TLS_KEY')) },
  handler,
).listen(port, '127.0.0.1');
