/**
 * The admin listener, on its own port and by default on loopback only. `GET /healthz` answers 200 while
 * the proxy serves and 503 once it drains (so a load balancer stops sending before connections close),
 * with a small JSON body for humans. Later parts (routing API, metrics) add their routes here.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { listen } from '../listeners/listen.js';

export interface Health {
  status: 'ok' | 'draining';
  routesGeneration: number;
}

export class AdminServer {
  readonly server: http.Server;

  constructor(
    private readonly options: { port: number; host: string; health: () => Health },
  ) {
    this.server = http.createServer({ headersTimeout: 10_000, requestTimeout: 30_000 }, this.onRequest);
  }

  private readonly onRequest = (req: http.IncomingMessage, res: http.ServerResponse): void => {
    const path = (req.url ?? '/').split('?')[0];
    if (path === '/healthz' && (req.method === 'GET' || req.method === 'HEAD')) {
      const health = this.options.health();
      const body = JSON.stringify(health);
      res.writeHead(health.status === 'ok' ? 200 : 503, {
        'content-type': 'application/json',
        'content-length': Buffer.byteLength(body),
        'cache-control': 'no-store',
      });
      res.end(req.method === 'HEAD' ? undefined : body);
      return;
    }
    const body = `proximation admin: no such endpoint ${req.method} ${path}; try GET /healthz\n`;
    res.writeHead(404, { 'content-type': 'text/plain; charset=utf-8', 'content-length': Buffer.byteLength(body) });
    res.end(body);
  };

  listen(): Promise<AddressInfo> {
    return listen(this.server, this.options.port, this.options.host);
  }

  async close(): Promise<void> {
    const closed = new Promise<void>((resolve) => this.server.close(() => resolve()));
    this.server.closeAllConnections();
    await closed;
  }
}
