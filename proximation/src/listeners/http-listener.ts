/**
 * The plain-HTTP listener. It answers ACME HTTP-01 challenges (`/.well-known/acme-challenge/<token>`)
 * from whatever responder the certificate side provides, and sends every other request for a routed
 * host to HTTPS with a 308 (method and body preserved). Unrouted hosts get a 404: redirecting them would
 * only lead to a failed TLS handshake. The host and path come from request-target.ts, as on HTTPS: an
 * absolute-form target's authority wins over Host, and a request it refuses gets its 400/501. CONNECT
 * gets 405, and the idle timeout means what it means on HTTPS (client-connections.ts).
 */
import http from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { ALLOWED_METHODS, CONNECT_REFUSAL, sendError, sendErrorToSocket, MESSAGES } from '../proxy/error-responses.js';
import { isRefusal, requestTarget } from '../proxy/request-target.js';
import { hostOf } from '../proxy/router.js';
import { ClientConnections } from './client-connections.js';
import { checkingInterval } from './https-listener.js';
import { listen } from './listen.js';

const CHALLENGE_PREFIX = '/.well-known/acme-challenge/';

/**
 * Resolves with the key authorization for a token, or undefined when no such challenge is pending.
 * It may read the shared directory: challenge requests are rare and are not the proxied request path.
 * It must not reject.
 */
export type ChallengeLookup = (token: string) => Promise<string | undefined>;

export interface HttpListenerOptions {
  port: number;
  host: string | undefined;
  publicHttpsPort: number;
  isRouted: (host: string) => boolean;
  challenges: ChallengeLookup;
  headersTimeoutMs: number;
  requestTimeoutMs: number;
  idleTimeoutMs: number;
  maxHeaderSize: number;
  maxConnections: number;
  /** Own SO_REUSEPORT socket (a worker process on Node 22.12+); see listen.ts. */
  reusePort?: boolean;
}

export class HttpListener {
  readonly server: http.Server;
  private readonly connections = new ClientConnections<Socket>();

  constructor(private readonly options: HttpListenerOptions) {
    this.server = http.createServer(
      {
        maxHeaderSize: options.maxHeaderSize,
        headersTimeout: options.headersTimeoutMs,
        requestTimeout: options.requestTimeoutMs,
        keepAliveTimeout: options.idleTimeoutMs,
        connectionsCheckingInterval: checkingInterval(options.headersTimeoutMs),
      },
      this.onRequest,
    );
    this.server.maxConnections = options.maxConnections;
    this.server.setTimeout(options.idleTimeoutMs);
    // As on HTTPS: a connection waiting for its answer (a challenge read from storage) is not idle.
    this.server.on('connection', (socket: Socket) => this.connections.add(socket));
    this.server.on('timeout', this.connections.onTimeout);
    // A forward-proxy request gets its answer, not a bare close (Node's without a listener).
    this.server.on('connect', (_req: http.IncomingMessage, socket: Duplex) => sendErrorToSocket(socket, 405, CONNECT_REFUSAL, { allow: ALLOWED_METHODS }));
  }

  private readonly onRequest = (req: http.IncomingMessage, res: http.ServerResponse): void => {
    this.connections.track(req.socket, { req, res, tunnel: false });
    const url = req.url ?? '/';
    if (url.startsWith(CHALLENGE_PREFIX)) {
      void this.options.challenges(url.slice(CHALLENGE_PREFIX.length)).then((keyAuthorization) => {
        if (keyAuthorization === undefined) {
          sendError(res, 404, 'no ACME challenge is pending for this token on this proxy.');
          return;
        }
        res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': Buffer.byteLength(keyAuthorization) });
        res.end(keyAuthorization);
      });
      return;
    }
    const target = requestTarget(req);
    if (isRefusal(target)) {
      sendError(res, target.status, target.message);
      return;
    }
    const host = hostOf(target.authority);
    if (!this.options.isRouted(host)) {
      sendError(res, 404, MESSAGES[404](host));
      return;
    }
    const port = this.options.publicHttpsPort === 443 ? '' : `:${this.options.publicHttpsPort}`;
    const bracketed = host.includes(':') ? `[${host}]` : host;
    // `*` (OPTIONS) is not a path to append.
    const path = target.path.startsWith('/') ? target.path : '/';
    res.writeHead(308, { location: `https://${bracketed}${port}${path}`, 'content-length': 0 });
    res.end();
  };

  listen(): Promise<AddressInfo> {
    return listen(this.server, this.options.port, this.options.host, this.options.reusePort);
  }

  async close(): Promise<void> {
    const closed = new Promise<void>((resolve) => this.server.close(() => resolve()));
    this.server.closeIdleConnections();
    await closed;
  }
}
