/**
 * The HTTPS listener: TLS chosen per SNI name, HTTP/2 and HTTP/1.1 by ALPN on one port, limits against
 * slow or abusive clients, and a graceful drain.
 *
 * TLS baseline (Mozilla's "intermediate" profile without its finite-field DHE suites): TLS 1.2 and 1.3
 * only; for TLS 1.2 only ECDHE key exchange with AEAD ciphers (no CBC, no RSA key transport); the
 * server's cipher order wins; X25519, P-256 and P-384. Sessions resume by ticket on TLS 1.2 and 1.3
 * for every SNI name, with ticket keys rotated hourly while listening (see tls/ticket-keys.ts).
 *
 * It uses Node's HTTP/2 server with HTTP/1.1 fallback. That server ignores the HTTP/1.1 limits passed as
 * options (maxHeaderSize, keepAliveTimeout), but its fallback reads them from the server object, so they
 * are set as properties below (the listener tests prove each one).
 *
 * Header count (HTTP/1.1): Node's parser keeps `maxHeadersCount` fields and silently drops the rest, so a
 * Content-Length or Authorization past them would vanish and a request go on without its body. It is
 * set one above MAX_REQUEST_HEADERS, and a request that reaches it is answered 431 here, before anything
 * else sees it. (HTTP/2 streams are bounded by maxHeaderListPairs, refused by Node.)
 *
 * RFC 8441: the HTTP/2 side advertises SETTINGS_ENABLE_CONNECT_PROTOCOL; Node hands every HTTP/2 CONNECT
 * stream (extended or not) to 'connect', not 'request', and those go to `onExtendedConnect`; an HTTP/1.1
 * CONNECT goes to `onConnect` with its socket.
 *
 * Timeouts (the README's table): Node's idle timer (`idleTimeoutMs`) runs on each HTTP/1.1 socket and
 * HTTP/2 session; the 'timeout' listener closes a connection only when it is the client's turn
 * (client-connections.ts): a connection with a request waiting on the upstream is not idle, so the
 * upstream timeout, not the idle one, answers it (504). Node's headers and request timeouts (HTTP/1.1)
 * and H2StreamLimits' request deadline (HTTP/2) stay as they are. Every connection or stream with an
 * exchange that the listener cuts is marked with why (client-cuts.ts), so the access log names the
 * timeout; an HTTP/1.1 headers timeout, which has no request to log, goes to `onHeadersTimeout` (a
 * metric).
 *
 * drain(): stops accepting, tells HTTP/2 clients GOAWAY, closes idle HTTP/1.1 connections and each busy
 * one as soon as its response is done; at the deadline destroys what is left (marked `drain`).
 *
 * TLS-ALPN-01 (`acmeTlsAlpn`, only when set): a CA validating a name connects with ALPN `acme-tls/1` and
 * SNI = the name, and must get a special self-signed certificate, while every other client must get the
 * real one. Node picks the certificate in SNICallback, which is not told the client's ALPN list; its
 * ALPNCallback is (and on Node 20 runs first), but cannot change the certificate, is not told which
 * connection it serves, and replaces the HTTP/2 server's own h2/http1.1 choice. So the listener reads
 * the ClientHello off the raw socket before TLS starts (`inspectClientHello`), puts the bytes back, and
 * hands the socket either to the HTTP/2 server's own TLS handling, unchanged, or, when `acme-tls/1` is
 * offered, to a separate TLS server that only negotiates `acme-tls/1` with the challenge certificate
 * and then closes. Node's own 'connection' listeners run after the peek, so connection limits,
 * timeouts, close() and drain() work as without it; after the hand-over the connection runs on
 * Node's native TLS stream as before. Cost, once per connection and nothing per request: the first
 * flight passes through JS (a 'readable' event, a scan of the ClientHello, an unshift) before OpenSSL
 * sees it; measured here at about 60-120 µs of CPU per connection, 10-15 % of a full ECDSA P-256
 * handshake. None when `acmeTlsAlpn` is unset (the local CA, HTTP-01). A client that sends no
 * complete ClientHello within handshakeTimeoutMs is disconnected.
 */
import http2, { Http2ServerRequest, type Http2ServerResponse } from 'node:http2';
import type { IncomingMessage } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import tls, { type SecureContext, type TLSSocket } from 'node:tls';
import { markCut } from '../proxy/client-cuts.js';
import type { ProxyRequest, ProxyResponse } from '../proxy/types.js';
import { inspectClientHello } from '../tls/client-hello.js';
import { UnrecognizedNameError, alertingSniCallback, type SniCallback } from '../tls/handshake-alert.js';
import { SESSION_LIFETIME_S, TICKET_KEY_ROTATION_MS, rotateTicketKeys } from '../tls/ticket-keys.js';
import { sendError, sendErrorToSocket } from '../proxy/error-responses.js';
import { ClientConnections } from './client-connections.js';
import { listen } from './listen.js';

const ACME_TLS_ALPN = 'acme-tls/1';

/** Header fields an HTTP/1.1 request may have (Node's own default, 2000, drops past about 1000). */
const MAX_REQUEST_HEADERS = 1000;
const TOO_MANY_HEADERS = `the request has more than ${MAX_REQUEST_HEADERS} header fields.`;

/** Whether Node's parser stopped keeping the request's fields (it keeps maxHeadersCount of them). */
function tooManyHeaders(req: IncomingMessage | ProxyRequest): boolean {
  return req.rawHeaders.length > 2 * MAX_REQUEST_HEADERS;
}

export interface HttpsListenerOptions {
  port: number;
  host: string | undefined;
  /** Refusing a name with UnrecognizedNameError sends the client an unrecognized_name alert. */
  SNICallback: SniCallback;
  /** TLS-ALPN-01 responder: the challenge context for a name, or undefined. Unset: no peeking at all. */
  acmeTlsAlpn?: (servername: string) => Promise<SecureContext | undefined>;
  onRequest: (req: ProxyRequest, res: ProxyResponse) => void;
  onUpgrade: (req: IncomingMessage, socket: Duplex, head: Buffer) => void;
  /** An HTTP/2 CONNECT stream (RFC 8441's extended CONNECT carries `:protocol`). */
  onExtendedConnect?: (req: Http2ServerRequest, res: Http2ServerResponse) => void;
  /** An HTTP/1.1 CONNECT request; the socket is the handler's (to answer and close). Unset: the socket is closed. */
  onConnect?: (req: IncomingMessage, socket: Duplex) => void;
  headersTimeoutMs: number;
  requestTimeoutMs: number;
  idleTimeoutMs: number;
  maxHeaderSize: number;
  maxConnections: number;
  /** An HTTP/1.1 connection sent no complete request head within headersTimeoutMs (Node answered 408 and closed it). */
  onHeadersTimeout?: () => void;
  /** Node's own default is 120 s: a connection stalled in its handshake held a connection slot that long. */
  handshakeTimeoutMs: number;
  /** Own SO_REUSEPORT socket (a worker process on Node 22.12+); see listen.ts. */
  reusePort?: boolean;
  /** false: the caller installs the ticket keys (`server.setTicketKeys`, a worker given them by its primary). */
  rotateTicketKeys?: boolean;
}

/** TLS 1.2 suites with forward secrecy and AEAD only; TLS 1.3 suites are all fine and left to Node. */
const TLS12_CIPHERS = [
  'ECDHE-ECDSA-AES128-GCM-SHA256',
  'ECDHE-RSA-AES128-GCM-SHA256',
  'ECDHE-ECDSA-AES256-GCM-SHA384',
  'ECDHE-RSA-AES256-GCM-SHA384',
  'ECDHE-ECDSA-CHACHA20-POLY1305',
  'ECDHE-RSA-CHACHA20-POLY1305',
].join(':');

/**
 * Node enforces the headers and request timeouts only when it sweeps its connections, every 30 s by
 * default, which would give a slow client up to 30 s more than configured.
 */
export function checkingInterval(headersTimeoutMs: number): number {
  return Math.min(1000, Math.max(50, Math.floor(headersTimeoutMs / 2)));
}

export class HttpsListener {
  readonly server: http2.Http2SecureServer;
  private readonly sessions = new ClientConnections<http2.ServerHttp2Session>();
  private readonly http1 = new ClientConnections<Socket>();
  private draining = false;
  private stopTicketKeyRotation: (() => void) | undefined;

  constructor(private readonly options: HttpsListenerOptions) {
    const server = http2.createSecureServer({
      allowHTTP1: true,
      // A refused name gets its TLS alert, not a bare TCP close.
      SNICallback: alertingSniCallback(options.SNICallback),
      minVersion: 'TLSv1.2',
      ciphers: `TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256:${TLS12_CIPHERS}`,
      ecdhCurve: 'X25519:P-256:P-384',
      honorCipherOrder: true,
      handshakeTimeout: options.handshakeTimeoutMs,
      sessionTimeout: SESSION_LIFETIME_S,
      maxSessionMemory: 32,
      settings: { maxConcurrentStreams: 128, maxHeaderListSize: options.maxHeaderSize, enableConnectProtocol: true },
      maxHeaderListPairs: 256,
    });
    if (options.acmeTlsAlpn !== undefined) routeAcmeTlsAlpn(server, options.acmeTlsAlpn, options.handshakeTimeoutMs);
    Object.assign(server, {
      maxHeaderSize: options.maxHeaderSize,
      maxHeadersCount: MAX_REQUEST_HEADERS + 1,
      headersTimeout: options.headersTimeoutMs,
      requestTimeout: options.requestTimeoutMs,
      keepAliveTimeout: options.idleTimeoutMs,
      connectionsCheckingInterval: checkingInterval(options.headersTimeoutMs),
    });
    server.setTimeout(options.idleTimeoutMs);
    // With a listener, Node leaves a timed-out connection to it instead of destroying it.
    server.on('timeout', (connection: Socket | http2.ServerHttp2Session) => {
      if (this.sessions.has(connection)) this.sessions.onTimeout(connection);
      else this.http1.onTimeout(connection as Socket);
    });
    server.maxConnections = options.maxConnections;
    server.on('session', (session: http2.ServerHttp2Session) => {
      this.sessions.add(session);
      if (this.draining) session.close();
    });
    // Node's HTTP/2 server leaves Nagle's algorithm on, which holds small responses back for the
    // client's delayed ACK (tens of ms per request on keep-alive connections).
    server.on('connection', (socket: Socket) => socket.setNoDelay(true));
    server.on('secureConnection', (socket: TLSSocket) => {
      if (socket.alpnProtocol === 'h2') return;
      this.http1.add(socket);
      // Node's headers and request timeouts end in socket.destroy(ERR_HTTP_REQUEST_TIMEOUT) (after a 408
      // when no response has begun): with a request in progress, it was still sending its body.
      socket.on('error', (err: NodeJS.ErrnoException) => {
        if (err.code !== 'ERR_HTTP_REQUEST_TIMEOUT') return;
        if (this.http1.idle(socket)) options.onHeadersTimeout?.();
        else markCut(socket, 'body');
      });
    });
    server.on('request', (req: ProxyRequest, res: ProxyResponse) => {
      if (req instanceof Http2ServerRequest) this.trackStream(req, res as Http2ServerResponse, false);
      else this.trackHttp1(req.socket as Socket, req, res);
      if (tooManyHeaders(req)) sendError(res, 431, TOO_MANY_HEADERS);
      else options.onRequest(req, res);
    });
    server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
      // From here on the socket belongs to the WebSocket tunnel, which drains it itself.
      this.http1.delete(socket as Socket);
      (socket as Socket).setTimeout(0);
      if (tooManyHeaders(req)) sendErrorToSocket(socket, 431, TOO_MANY_HEADERS);
      else options.onUpgrade(req, socket, head);
    });
    server.on('connect', (req: IncomingMessage | Http2ServerRequest, res: Http2ServerResponse | Duplex) => {
      if (req instanceof Http2ServerRequest) {
        this.trackStream(req, res as Http2ServerResponse, true);
        if (options.onExtendedConnect !== undefined) options.onExtendedConnect(req, res as Http2ServerResponse);
        else (res as Duplex).destroy();
      } else if (options.onConnect !== undefined) options.onConnect(req, res as Duplex);
      // Without a handler: closed, as Node's server does when nothing listens.
      else (res as Duplex).destroy();
    });
    // A failed handshake (unknown name, port scan, plain HTTP on 443) is the client's problem, not ours.
    server.on('tlsClientError', () => {});
    this.server = server;
  }

  private trackHttp1(socket: Socket, req: ProxyRequest, res: ProxyResponse): void {
    if (!this.http1.has(socket)) return;
    if (this.draining) res.setHeader('connection', 'close');
    this.http1.track(socket, { req, res, tunnel: false }, () => {
      if (this.draining && this.http1.idle(socket)) socket.end();
    });
  }

  private trackStream(req: Http2ServerRequest, res: Http2ServerResponse, tunnel: boolean): void {
    const session = req.stream.session as http2.ServerHttp2Session | undefined;
    if (session !== undefined) this.sessions.track(session, { req, res, tunnel });
  }

  async listen(): Promise<AddressInfo> {
    const address = await listen(this.server, this.options.port, this.options.host, this.options.reusePort);
    if (this.options.rotateTicketKeys !== false) this.stopTicketKeyRotation = rotateTicketKeys(this.server, TICKET_KEY_ROTATION_MS);
    return address;
  }

  get connections(): number {
    return this.sessions.size + this.http1.size;
  }

  /** Resolves once every connection is gone: by itself before `deadline`, destroyed at it. */
  async drain(deadline: number): Promise<void> {
    this.draining = true;
    this.stopTicketKeyRotation?.();
    const closed = new Promise<void>((resolve) => this.server.close(() => resolve()));
    for (const session of this.sessions.connections()) session.close();
    for (const socket of this.http1.connections()) if (this.http1.idle(socket)) socket.end();
    const timer = setTimeout(() => {
      for (const session of this.sessions.connections()) this.sessions.cut(session, 'drain');
      for (const socket of this.http1.connections()) this.http1.cut(socket, 'drain');
    }, Math.max(0, deadline - Date.now()));
    await closed;
    clearTimeout(timer);
  }
}

/** Sends connections that offer ALPN acme-tls/1 to a challenge-only TLS server; see the module header. */
function routeAcmeTlsAlpn(server: http2.Http2SecureServer, contextFor: (name: string) => Promise<SecureContext | undefined>, helloTimeoutMs: number): void {
  const challenges = tls.createServer({
    ALPNProtocols: [ACME_TLS_ALPN],
    minVersion: 'TLSv1.2',
    handshakeTimeout: helloTimeoutMs,
    SNICallback: alertingSniCallback((name, cb) => {
      contextFor(name).then(
        (context) => (context === undefined ? cb(new UnrecognizedNameError(`no TLS-ALPN-01 challenge is pending for ${name}`)) : cb(null, context)),
        (err: unknown) => cb(err instanceof Error ? err : new Error(String(err))),
      );
    }),
  });
  challenges.on('secureConnection', (socket: TLSSocket) => socket.end());
  challenges.on('tlsClientError', () => {});
  // Node's own handling of a new connection (the TLS wrap), run once the ClientHello has been looked at.
  const tlsHandlers = server.listeners('connection') as ((socket: Socket) => void)[];
  server.removeAllListeners('connection');
  server.on('connection', (socket: Socket) => {
    peekClientHello(socket, helloTimeoutMs, (alpn) => {
      if (alpn.includes(ACME_TLS_ALPN)) challenges.emit('connection', socket);
      else for (const handler of tlsHandlers) handler.call(server, socket);
    });
  });
}

/**
 * Collects the socket's first bytes until `inspectClientHello` decides, puts them back and calls `done`
 * with the offered ALPN protocols (empty for anything that is not a readable ClientHello). Reads in
 * paused mode ('readable' + read()): measurably cheaper than a 'data' listener and pause().
 */
function peekClientHello(socket: Socket, timeoutMs: number, done: (alpn: string[]) => void): void {
  let received: Buffer | undefined;
  const stop = (): void => {
    clearTimeout(timer);
    socket.off('readable', onReadable);
    socket.off('error', onError);
    socket.off('close', onClose);
  };
  const onReadable = (): void => {
    for (let chunk: Buffer | null; (chunk = socket.read() as Buffer | null) !== null; ) {
      received = received === undefined ? chunk : Buffer.concat([received, chunk]);
    }
    if (received === undefined) return;
    const hello = inspectClientHello(received);
    if (hello.kind === 'more') return;
    stop();
    socket.unshift(received);
    done(hello.kind === 'hello' ? hello.alpn : []);
  };
  // Before the hand-over nobody else listens: a reset or a silent client just ends here.
  const onError = (): void => {
    stop();
    socket.destroy();
  };
  const onClose = (): void => stop();
  const timer = setTimeout(onError, timeoutMs);
  socket.on('readable', onReadable);
  socket.on('error', onError);
  socket.on('close', onClose);
}
