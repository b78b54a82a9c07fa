/**
 * Entry point of the http-proxy 1.18 reference row, run as its own process: a Node HTTPS server whose
 * handler is `httpProxy.createProxyServer({ target, agent: keep-alive agent }).web(req, res)`, i.e. the
 * minimal way people put a proxy in front of an app with that library. Listens on 127.0.0.1 only.
 * Environment (validated here, exit code 2 with a message when wrong): BENCH_HTTPS_PORT, BENCH_TARGET
 * (an http origin), BENCH_TLS_CERT, BENCH_TLS_KEY (PEM files). Upstream errors answer 502.
 */
import { Agent } from 'node:http';
import { createServer } from 'node:https';
import { readFileSync } from 'node:fs';
import httpProxy from 'http-proxy';

function required(name: string): string {
  const value = process.env[name];
  if (value === undefined || value === '') {
    process.stderr.write(`http-proxy reference: environment variable ${name} must be set\n`);
    process.exit(2);
  }
  return value;
}

const port = Number(required('BENCH_HTTPS_PORT'));
const target = required('BENCH_TARGET');
if (!Number.isInteger(port) || port < 1 || port > 65535 || !/^http:\/\/127\.0\.0\.1:\d+$/.test(target)) {
  process.stderr.write(`http-proxy reference: bad BENCH_HTTPS_PORT=${port} or BENCH_TARGET=${target}\n`);
  process.exit(2);
}

const proxy = httpProxy.createProxyServer({
  target,
  agent: new Agent({ keepAlive: true, maxSockets: 128 }),
});
proxy.on('error', (_err, _req, res) => {
  if ('writeHead' in res && !res.headersSent) res.writeHead(502);
  res.end();
});

createServer(
  { cert: readFileSync(required('BENCH_TLS_CERT')), key: readFileSync(required('BENCH_TLS_KEY')) },
  (req, res) => proxy.web(req, res),
).listen(port, '127.0.0.1');
