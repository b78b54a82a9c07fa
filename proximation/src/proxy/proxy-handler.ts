/**
 * The HTTPS request path: check the request's target (request-target.ts: 400/501), route by its
 * authority, rewrite headers, forward (or tunnel a WebSocket, asked for by an HTTP/1.1 upgrade or an
 * HTTP/2 extended CONNECT), and write one access-log line per exchange. It reads only memory (router,
 * pools); nothing here waits on the disk.
 *
 * HSTS: a routed site's Strict-Transport-Security value is set on the response before anything else,
 * so it goes out with the upstream's response and with the proxy's own 502/503/504 for that site (never
 * for unknown hosts, and never from the plain-HTTP listener, which does not come here); it replaces
 * the upstream's own header (see forward.ts).
 *
 * A preview host with restricted access (preview-access.ts) answers 403 to a client it does not admit.
 *
 * Misdirected requests (RFC 9110 15.5.20): a request for a routed host that the connection's certificate
 * does not cover (`certificateCovers`, asked with the connection's SNI name) gets 421 and reaches no
 * upstream, so a client that reuses a connection for another host (HTTP/2 connection coalescing, or a
 * Host that differs from SNI) retries on a connection of its own instead of reaching a site the
 * handshake never vouched for. A host no site routes gets its 404 whatever the connection (it names the
 * fix to the operator, and a new connection would only fail its handshake). A connection without SNI
 * covers no host: proximation has no default certificate, so its handshake fails, and only a TLS session
 * resumed without SNI could bring one here. A trusted proxy (PROXIMATION_TRUSTED_PROXIES) is not asked:
 * an operator's own load balancer or CDN may keep one connection per upstream and carry every host on
 * it (nginx's keepalive pool does), which is connection reuse, not a client's mistake. WebSockets are
 * checked alike; the plain-HTTP listener never comes here.
 */
import type { IncomingMessage } from 'node:http';
import { Http2ServerRequest, type Http2ServerResponse } from 'node:http2';
import type { Duplex } from 'node:stream';
import type { TLSSocket } from 'node:tls';
import type { Logger } from '../logger.js';
import type { TrustedProxies } from '../config.js';
import type { ExchangeObserver } from '../metrics.js';
import { ALLOWED_METHODS, CONNECT_REFUSAL, MESSAGES, sendError, sendErrorToSocket } from './error-responses.js';
import type { ClientBuffers } from './client-buffers.js';
import { plainAddress, upstreamRequestHeaders } from './forwarded-headers.js';
import { STRICT_TRANSPORT_SECURITY, forward, requestHasBody, type ForwardResult } from './forward.js';
import { PREVIEW_TOKEN_HEADER } from './preview-access.js';
import { isRefusal, requestTarget, type RequestTarget } from './request-target.js';
import { hostOf, type Route, type Router } from './router.js';
import type { ProxyRequest, ProxyResponse } from './types.js';
import type { TunnelResult, WebSocketTarget, WebSocketTunnels } from './websocket.js';
import type { InFlight } from './in-flight.js';

export interface ProxyHandlerOptions {
  router: Router;
  tunnels: WebSocketTunnels;
  trustedProxies: TrustedProxies;
  /** Access lines go here; undefined turns them off. */
  accessLog: Logger | undefined;
  /** Told of every exchange (metrics); optional. */
  metrics?: ExchangeObserver;
  /** Counts what is in flight to each upstream (the heartbeat's); optional. */
  inFlight?: InFlight;
  /**
   * Whether the certificate a connection was served for SNI name `servername` covers `host` (both lower
   * case); a request for a routed host it does not cover gets 421. Undefined: every host is taken.
   */
  certificateCovers?: (servername: string, host: string) => boolean;
  /** Caps what responses buffer per client connection and address; optional. */
  buffers?: ClientBuffers;
}

interface Exchange {
  req: ProxyRequest | IncomingMessage;
  authority: string;
  /** The target as the upstream gets it (origin-form). */
  path: string;
  client: string;
  route: Route | undefined;
  upstream: string | undefined;
  start: number;
}

/** A request that may be routed: its target, and the route its authority has (undefined: none). */
interface Routable {
  target: RequestTarget;
  route: Route | undefined;
}

/** For the log line of a request refused before its target was known: what it named, however it named it. */
function authorityOf(req: ProxyRequest): string {
  return (req.headers[':authority'] as string | undefined) ?? req.headers.host ?? '';
}

export class ProxyHandler {
  constructor(private readonly options: ProxyHandlerOptions) {}

  readonly onRequest = (req: ProxyRequest, res: ProxyResponse): void => {
    const start = performance.now();
    const routable = this.routable(req, (status, message) => sendError(res, status, message), start);
    if (routable === undefined) return;
    const { target, route } = routable;
    const { authority, path } = target;
    if (route?.hsts !== undefined) res.setHeader(STRICT_TRANSPORT_SECURITY, route.hsts);
    const peer = req.socket.remoteAddress ?? '';
    if (route?.upstreams === undefined) {
      const [status, message] = unroutable(route, authority);
      const bytes = sendError(res, status, message);
      this.log({ req, authority, path, client: plainAddress(peer), route, upstream: undefined, start }, { status, bytes });
      return;
    }
    const selection = route.upstreams;
    const { headers, client } = upstreamRequestHeaders(req.rawHeaders, authority, peer, 'https', this.options.trustedProxies);
    if (!previewAdmits(route, client, req.headers[PREVIEW_TOKEN_HEADER])) {
      const bytes = sendError(res, 403, MESSAGES[403](hostOf(authority)));
      this.log({ req, authority, path, client, route, upstream: undefined, start }, { status: 403, bytes });
      return;
    }
    const upstream = selection.pick(Date.now());
    if (upstream === undefined) {
      const bytes = sendError(res, 503, MESSAGES[503](route.site));
      this.log({ req, authority, path, client, route, upstream: undefined, start }, { status: 503, bytes });
      return;
    }
    const exchange: Exchange = { req, authority, path, client, route, upstream: upstream.origin, start };
    const done = this.options.inFlight?.request(route.site, route.version ?? '', upstream.origin);
    forward(req, res, upstream, path, headers, requestHasBody(req), (tried) => selection.retry(tried, Date.now()), (result) => {
      done?.();
      exchange.upstream = result.upstream ?? exchange.upstream;
      this.log(exchange, result);
    }, this.options.buffers);
  };

  readonly onUpgrade = (req: IncomingMessage, socket: Duplex, head: Buffer): void => {
    this.tunnel(req, (status, message) => sendErrorToSocket(socket, status, message), (target, onDone) => this.options.tunnels.open(req, socket, head, target, onDone));
  };

  /** An HTTP/2 CONNECT stream: a WebSocket by RFC 8441 (`:protocol`), else 405 as Node answers it. */
  readonly onExtendedConnect = (req: Http2ServerRequest, res: Http2ServerResponse): void => {
    if (req.headers[':protocol'] === undefined) {
      this.refuseConnect(req, () => {
        res.setHeader('allow', ALLOWED_METHODS);
        return sendError(res, 405, CONNECT_REFUSAL);
      });
      return;
    }
    this.tunnel(req, (status, message) => sendError(res, status, message), (target, onDone) => this.options.tunnels.openStream(req, res, target, onDone));
  };

  /**
   * The request's target and route, or undefined when it was refused (and logged): 400/501 for a target
   * that request-target.ts refuses, 421 for a routed host the connection's certificate does not cover.
   */
  private routable(req: ProxyRequest, refuse: (status: number, message: string) => number, start: number, upgrade = false): Routable | undefined {
    const target = requestTarget(req, upgrade);
    const client = (): string => plainAddress(req.socket.remoteAddress ?? '');
    if (isRefusal(target)) {
      const bytes = refuse(target.status, target.message);
      this.log({ req, authority: authorityOf(req), path: req.url ?? '', client: client(), route: undefined, upstream: undefined, start }, { status: target.status, bytes });
      return undefined;
    }
    const route = this.options.router.route(target.authority);
    const servername = (req.socket as TLSSocket).servername;
    const covers = this.options.certificateCovers;
    const host = hostOf(target.authority);
    const misdirected =
      route !== undefined &&
      covers !== undefined &&
      !(typeof servername === 'string' && covers(servername, host)) &&
      !this.options.trustedProxies.has(req.socket.remoteAddress ?? '');
    if (misdirected) {
      const bytes = refuse(421, MESSAGES[421](host, typeof servername === 'string' ? servername : undefined));
      this.log({ req, authority: target.authority, path: target.path, client: client(), route: undefined, upstream: undefined, start }, { status: 421, bytes });
      return undefined;
    }
    return { target, route };
  }

  /** An HTTP/1.1 CONNECT: 405 on the socket, which then closes (what followed the request is not HTTP). */
  readonly onConnect = (req: IncomingMessage, socket: Duplex): void => {
    this.refuseConnect(req, () => sendErrorToSocket(socket, 405, CONNECT_REFUSAL, { allow: ALLOWED_METHODS }));
  };

  /** A forward-proxy request: answered 405 by `answer` (which returns the body bytes), and logged. */
  private refuseConnect(req: IncomingMessage | Http2ServerRequest, answer: () => number): void {
    const start = performance.now();
    const bytes = answer();
    this.log({ req, authority: authorityOf(req), path: req.url ?? '', client: plainAddress(req.socket.remoteAddress ?? ''), route: undefined, upstream: undefined, start }, { status: 405, bytes });
  }

  /** Routes a WebSocket request and opens its tunnel; `refuse` answers it in the client's protocol. */
  private tunnel(
    req: IncomingMessage | Http2ServerRequest,
    refuse: (status: number, message: string) => number,
    open: (target: WebSocketTarget, onDone: (result: TunnelResult) => void) => void,
  ): void {
    const start = performance.now();
    const routable = this.routable(req, refuse, start, !(req instanceof Http2ServerRequest));
    if (routable === undefined) return;
    const { target, route } = routable;
    const { authority, path } = target;
    const peer = req.socket.remoteAddress ?? '';
    if (route?.upstreams === undefined || route.version === undefined) {
      const [status, message] = unroutable(route, authority);
      const bytes = refuse(status, message);
      this.log({ req, authority, path, client: plainAddress(peer), route, upstream: undefined, start }, { status, bytes });
      return;
    }
    const { headers, client } = upstreamRequestHeaders(req.rawHeaders, authority, peer, 'https', this.options.trustedProxies);
    if (!previewAdmits(route, client, req.headers[PREVIEW_TOKEN_HEADER])) {
      const bytes = refuse(403, MESSAGES[403](hostOf(authority)));
      this.log({ req, authority, path, client, route, upstream: undefined, start }, { status: 403, bytes });
      return;
    }
    const upstream = route.upstreams.pick(Date.now());
    if (upstream === undefined) {
      const bytes = refuse(503, MESSAGES[503](route.site));
      this.log({ req, authority, path, client, route, upstream: undefined, start }, { status: 503, bytes });
      return;
    }
    const exchange: Exchange = { req, authority, path, client, route, upstream: upstream.origin, start };
    const done = this.options.inFlight?.websocket(route.site, route.version, upstream.origin);
    open(
      {
        origin: upstream.origin,
        path,
        headers: pairsToRecord(headers),
        labels: { site: route.site, version: route.version, upstream: upstream.origin },
      },
      (result) => {
        done?.();
        this.log(exchange, { status: result.status, bytes: result.bytesFromUpstream, error: result.error }, true);
      },
    );
  }

  /** @param tunnel a WebSocket: its duration is the tunnel's life, not a response time */
  private log(exchange: Exchange, result: ForwardResult, tunnel = false): void {
    const { req, route } = exchange;
    const elapsedMs = performance.now() - exchange.start;
    this.options.metrics?.exchange(route, result.status, exchange.upstream === undefined || tunnel ? undefined : elapsedMs / 1000);
    const log = this.options.accessLog;
    if (log === undefined) return;
    log.info({
      method: req.method,
      host: exchange.authority,
      path: exchange.path,
      status: result.status,
      bytes: result.bytes,
      durationMs: Math.round(elapsedMs * 10) / 10,
      site: route?.site,
      version: route?.version,
      upstream: exchange.upstream,
      client: exchange.client,
      protocol: req.httpVersion,
      error: result.error?.message,
      timeout: result.timeout,
    });
  }
}

function previewAdmits(route: Route, client: string, token: string | string[] | undefined): boolean {
  return route.preview === undefined || route.preview(client, typeof token === 'string' ? token : undefined);
}

function unroutable(route: Route | undefined, authority: string): [number, string] {
  return route === undefined ? [404, MESSAGES[404](hostOf(authority))] : [503, MESSAGES[503](route.site)];
}

function pairsToRecord(pairs: readonly string[]): Record<string, string | string[]> {
  const out: Record<string, string | string[]> = {};
  for (let i = 0; i < pairs.length; i += 2) {
    const name = pairs[i]!.toLowerCase();
    const value = pairs[i + 1]!;
    const prev = out[name];
    out[name] = prev === undefined ? value : Array.isArray(prev) ? [...prev, value] : [prev, value];
  }
  return out;
}
