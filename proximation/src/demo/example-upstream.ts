/**
 * The small upstream that `proximation demo` routes to, so a first run shows a request going all the way
 * through: it answers with what it received, which makes Host and X-Forwarded-* visible.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';

export async function startExampleUpstream(): Promise<{ origin: string; close(): Promise<void> }> {
  const server = http.createServer((req, res) => {
    const body = [
      'Hello from the example upstream, reached through proximation.',
      `  ${req.method} ${req.url}`,
      `  host: ${req.headers.host}`,
      `  x-forwarded-for: ${req.headers['x-forwarded-for']}`,
      `  x-forwarded-proto: ${req.headers['x-forwarded-proto']}`,
      '',
    ].join('\n');
    res.writeHead(200, { 'content-type': 'text/plain; charset=utf-8', 'content-length': Buffer.byteLength(body) });
    res.end(body);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    origin: `http://127.0.0.1:${port}`,
    close: () =>
      new Promise((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
