/**
 * The admin listener, on its own port and by default on loopback only; the router of its endpoints.
 *
 * - `GET /healthz` answers 200 while the proxy serves and 503 once it drains (so a load balancer stops
 *   sending before connections close), while one of its worker processes is not serving, or while no
 *   valid routing table has been loaded (`reason` says why), with a small JSON body for humans. It
 *   needs no token.
 * - `GET /metrics` answers the Prometheus exposition (metrics.ts) with the registry's content type. It
 *   needs no token unless `metricsNeedToken` (then it is refused as the API is, below): scrapers rarely
 *   carry one, and on loopback nobody else can reach it.
 * - `/api/...` is the routing API (routing-api.ts): `GET /api/routes`, `POST /api/routes/changes`, and
 *   the fleet's status (status-api.ts): `GET /api/status`.
 *   Every request there needs the admin token (admin-auth.ts): without a configured token the API is off
 *   and answers 403 saying how to turn it on; a missing or wrong token answers 401 with
 *   `WWW-Authenticate: Bearer`; then an unknown endpoint 404 and a wrong method 405 with `Allow`. All
 *   of these answer JSON `{"error": {"code", "message"}}`. With `overview`, `GET /api/overview` too
 *   (status-overview.ts).
 * - With `statusPage`, `GET /` and its assets (status-page.ts): no token; the page asks for it.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { ADMIN_CHANGES_PATH, ADMIN_ROUTES_PATH, ProximationError, errorMessage } from '@proximation/shared';
import { listen } from '../listeners/listen.js';
import type { AdminAuthorizer } from './admin-auth.js';
import { sendError } from './api-http.js';
import type { RoutingApi } from './routing-api.js';
import { ADMIN_STATUS_PATH } from './status-api.js';
import { ADMIN_OVERVIEW_PATH } from './status-overview.js';
import type { StatusPage } from './status-page.js';

export interface Health {
  /**
   * 200 only for ok; degraded: a worker process is not serving (several workers, cluster/primary.ts);
   * no-routing-table: the routing table could not be read or validated and none has been before.
   */
  status: 'ok' | 'draining' | 'degraded' | 'no-routing-table';
  /** With no-routing-table: the file and its error. */
  reason?: string;
  routesGeneration: number;
  /** Present while the shared storage does not answer (serving goes on from memory). */
  storage?: 'unreachable';
  /** With several workers: each one's slot, process, state and routing generation. */
  workers?: readonly { worker: number; pid: number | undefined; state: string; routesGeneration: number }[];
}

type Handler = (req: http.IncomingMessage, res: http.ServerResponse) => Promise<void>;

export interface AdminServerOptions {
  port: number;
  host: string;
  health: () => Health;
  authorize: AdminAuthorizer;
  routingApi: RoutingApi;
  /** GET /api/status (status-api.ts). */
  statusApi: Handler;
  metrics: { readonly contentType: string; exposition(): Promise<string> };
  /** Whether GET /metrics needs the admin token too. */
  metricsNeedToken: boolean;
  statusPage?: StatusPage;
  /** GET /api/overview, the status page's data. */
  overview?: Handler;
}

const DISABLED_MESSAGE =
  'The admin API is off: no admin token is configured. To turn it on, put a token in a file (such as the output of ' +
  '"openssl rand -hex 32"), start proximation with PROXIMATION_ADMIN_TOKEN_FILE naming that file (or PROXIMATION_ADMIN_TOKEN), ' +
  'and send "Authorization: Bearer <token>" (deploy: --token-file FILE or DEPLOY_TOKEN). GET /healthz needs no token.';

export class AdminServer {
  readonly server: http.Server;
  private readonly endpoints: ReadonlyMap<string, { method: string; handle: Handler }>;

  constructor(private readonly options: AdminServerOptions) {
    this.server = http.createServer({ headersTimeout: 10_000, requestTimeout: 30_000 }, this.onRequest);
    this.endpoints = new Map([
      [ADMIN_ROUTES_PATH, { method: 'GET', handle: options.routingApi.getRoutes }],
      [ADMIN_CHANGES_PATH, { method: 'POST', handle: options.routingApi.postChange }],
      [ADMIN_STATUS_PATH, { method: 'GET', handle: options.statusApi }],
      ...(options.overview === undefined ? [] : [[ADMIN_OVERVIEW_PATH, { method: 'GET', handle: options.overview }] as const]),
    ]);
  }

  private readonly onRequest = (req: http.IncomingMessage, res: http.ServerResponse): void => {
    const path = (req.url ?? '/').split('?')[0] ?? '/';
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
    if (path === '/metrics' && (req.method === 'GET' || req.method === 'HEAD')) {
      if (!this.options.metricsNeedToken || this.authorized(req, res)) void this.sendMetrics(req, res);
      return;
    }
    if (path === '/api' || path.startsWith('/api/')) {
      this.onApiRequest(req, res, path);
      return;
    }
    if (this.options.statusPage?.handle(req, res, path) === true) return;
    const body = `proximation admin: no such endpoint ${req.method} ${path}; try GET /healthz, GET /metrics, GET ${ADMIN_ROUTES_PATH} or POST ${ADMIN_CHANGES_PATH}\n`;
    res.writeHead(404, { 'content-type': 'text/plain; charset=utf-8', 'content-length': Buffer.byteLength(body) });
    res.end(body);
  };

  private async sendMetrics(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const { metrics } = this.options;
    let body: string;
    try {
      body = await metrics.exposition();
    } catch (err) {
      sendError(res, new ProximationError('ERR_METRICS_FAILED', `Collecting the metrics failed: ${errorMessage(err)}`));
      return;
    }
    res.writeHead(200, { 'content-type': metrics.contentType, 'content-length': Buffer.byteLength(body), 'cache-control': 'no-store' });
    res.end(req.method === 'HEAD' ? undefined : body);
  }

  /** Whether the request carries the admin token; answers it (403 or 401) when not. */
  private authorized(req: http.IncomingMessage, res: http.ServerResponse): boolean {
    const access = this.options.authorize(req.headers.authorization);
    if (access === 'disabled') {
      sendError(res, new ProximationError('ERR_ADMIN_API_DISABLED', DISABLED_MESSAGE));
      return false;
    }
    if (access !== 'allowed') {
      const problem = access === 'no-token' ? 'This request carries no admin token' : 'The admin token of this request is wrong';
      sendError(
        res,
        new ProximationError(
          'ERR_UNAUTHORIZED',
          `${problem}: send "Authorization: Bearer <token>" with the token configured on the proxy in PROXIMATION_ADMIN_TOKEN_FILE or ` +
            'PROXIMATION_ADMIN_TOKEN (deploy: --token-file FILE or DEPLOY_TOKEN).',
        ),
        { 'www-authenticate': access === 'no-token' ? 'Bearer realm="proximation admin"' : 'Bearer realm="proximation admin", error="invalid_token"' },
      );
      return false;
    }
    return true;
  }

  private onApiRequest(req: http.IncomingMessage, res: http.ServerResponse, path: string): void {
    if (!this.authorized(req, res)) return;
    const endpoint = this.endpoints.get(path);
    if (endpoint === undefined) {
      sendError(res, new ProximationError('ERR_NOT_FOUND', `No admin API endpoint ${path}; there are GET ${ADMIN_ROUTES_PATH} and POST ${ADMIN_CHANGES_PATH}.`));
      return;
    }
    if (req.method !== endpoint.method) {
      sendError(res, new ProximationError('ERR_METHOD_NOT_ALLOWED', `${path} answers ${endpoint.method} only, not ${req.method}.`), { allow: endpoint.method });
      return;
    }
    void endpoint.handle(req, res);
  }

  listen(): Promise<AddressInfo> {
    return listen(this.server, this.options.port, this.options.host);
  }

  async close(): Promise<void> {
    const closed = new Promise<void>((resolve) => this.server.close(() => resolve()));
    this.server.closeAllConnections();
    await closed;
  }
}
