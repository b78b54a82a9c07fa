/**
 * WebSocket tunnels: relays a WebSocket opening handshake to an upstream as an HTTP/1.1 upgrade and,
 * once the upstream switches protocols, copies bytes both ways until either side closes. The client
 * asks by an HTTP/1.1 upgrade (`open`) or by RFC 8441's extended CONNECT on an HTTP/2 stream
 * (`openStream`: `:method CONNECT`, `:protocol websocket`); both carry the same RFC 6455 frames, so
 * everything below holds for both. For an HTTP/2 client the upstream's request is the GET upgrade RFC
 * 8441 5 maps it to, with the Sec-WebSocket-Key that HTTP/2 leaves out made up here; the upstream's 101
 * must carry the matching Sec-WebSocket-Accept (else 502), and becomes the client's 200, its
 * end-to-end headers (Sec-WebSocket-Protocol, -Extensions) kept. The stream is the client's connection:
 * its END_STREAM is the client's end, RST_STREAM a reset. Only http: and https: upstreams can take a
 * tunnel (an HTTP/2 upstream has no Upgrade): any other is answered 502.
 *
 * Guarantees of `WebSocketTunnels.open()` and `openStream()`: they never throw and handle every socket
 * error; they call `onDone` exactly once, after the client socket or stream (and the upstream socket, if
 * any) are closed. The client gets the upstream's 101 (headers verbatim; on HTTP/2 the 200 above) or its
 * refusal (end-to-end headers, body streamed, then the connection or stream closes); 502 when the
 * upstream cannot be reached, 504 when it does not answer within `connectTimeoutMs`, 400 when the
 * client asks to upgrade to anything but "websocket" (the tunnel tracks WebSocket frames, so it cannot carry other protocols). Data flows
 * with back-pressure in both directions. `closedBy` names the side that sent the first Close frame,
 * or else the first to end or reset its connection (`error` then holds the reset); it is 'upstream'
 * for a refused upgrade, 'error' for 400/502/504, and 'drain' when `close()` came first.
 *
 * `WebSocketTunnels.close()` shuts tunnels down the way a WebSocket server does: it waits for the
 * frame in flight in each direction to end, sends a Close frame to each peer, stops forwarding,
 * ends each connection once its peer answered, and destroys what is left after `timeoutMs`;
 * tunnels still waiting for the upstream's answer or sending an HTTP response are destroyed. It
 * rejects with `ProximationError` `ERR_WS_CLOSE_FRAME_INVALID` for a code or reason that cannot go
 * in a Close frame.
 */
import { createHash, randomBytes } from 'node:crypto';
import http from 'node:http';
import type { Http2ServerRequest, Http2ServerResponse, ServerHttp2Stream } from 'node:http2';
import https from 'node:https';
import net from 'node:net';
import { performance } from 'node:perf_hooks';
import type { Duplex } from 'node:stream';
import tls from 'node:tls';
import { ProximationError } from '@proximation/shared';
import { MESSAGES, sendError, sendErrorToSocket } from './error-responses.js';
import { clientResponseHeaders } from './forwarded-headers.js';
import { FrameBoundaryTracker, buildCloseFrame } from './websocket-frames.js';

export interface WebSocketTarget {
  /** Upstream origin, e.g. "http://127.0.0.1:8080" or "https://app.internal:8443". */
  origin: string;
  /** Request target including the query, e.g. "/socket?x=1". */
  path: string;
  /**
   * Request headers to send upstream, already rewritten by the caller (Host: the routed authority,
   * X-Forwarded-* set, hop-by-hop removed). The tunnel adds `Connection: Upgrade` and the client's `Upgrade`.
   */
  headers: Record<string, string | string[]>;
  /** Opaque tags (site, version, upstream) that `close({ where })` selects tunnels by. */
  labels: Readonly<Record<string, string>>;
}

export interface TunnelResult {
  /** Status sent to the client: 101 (200 on HTTP/2), the upstream's refusal, 400, 502 or 504; 0 when none was. */
  status: number;
  /** Bytes received from the client after its upgrade request. */
  bytesFromClient: number;
  /** Bytes received from the upstream after its response head. */
  bytesFromUpstream: number;
  durationMs: number;
  closedBy: 'client' | 'upstream' | 'drain' | 'error';
  error?: Error;
}

export interface WebSocketTunnelsOptions {
  /** How long the upstream has to accept the connection and answer the upgrade request. */
  connectTimeoutMs: number;
  /** CA trusted for https upstreams, in addition to Node's bundled roots. */
  ca?: string | Buffer;
}

export interface CloseTunnelsOptions {
  /** Close code sent to both peers; default 1001 "going away". */
  code?: number;
  /** Close reason, at most 123 bytes of UTF-8; default empty. */
  reason?: string;
  /** How long peers have to answer the Close frame before their connections are destroyed; default 5000. */
  timeoutMs?: number;
  /** Selects tunnels by their labels; default all. */
  where?: (labels: Readonly<Record<string, string>>) => boolean;
}

const DEFAULT_CLOSE_TIMEOUT_MS = 5_000;
/** Probing idle connections after a minute, not the OS default of two hours, frees the tunnels of vanished peers. */
const KEEPALIVE_INITIAL_DELAY_MS = 60_000;
/** How long a connection we have ended may take to end its side before we destroy it. */
const RELEASE_TIMEOUT_MS = 5_000;

type Side = 'client' | 'upstream';
type ClosedBy = TunnelResult['closedBy'];

interface Registry {
  readonly all: Set<Tunnel>;
  readonly open: Set<Tunnel>;
}

export class WebSocketTunnels {
  readonly #connectTimeoutMs: number;
  readonly #ca: (string | Buffer)[] | undefined;
  readonly #registry: Registry = { all: new Set(), open: new Set() };

  constructor(options: WebSocketTunnelsOptions) {
    this.#connectTimeoutMs = options.connectTimeoutMs;
    // `ca` replaces Node's trusted roots; the option adds a CA, so the roots go along.
    this.#ca = options.ca === undefined ? undefined : [...tls.rootCertificates, options.ca];
  }

  /**
   * Tunnels the upgrade request `req`, which arrived on `clientSocket` with `head` (the bytes read
   * past its head), to `target`. Call it from the server's 'upgrade' event.
   */
  open(
    req: http.IncomingMessage,
    clientSocket: Duplex,
    head: Buffer,
    target: WebSocketTarget,
    onDone: (result: TunnelResult) => void,
  ): void {
    new Tunnel(this.#registry, this.#connectTimeoutMs, this.#ca, new UpgradeEnd(req, clientSocket, head), target, onDone).start();
  }

  /** Tunnels the extended CONNECT request `req` (RFC 8441) on its HTTP/2 stream to `target`. */
  openStream(req: Http2ServerRequest, res: Http2ServerResponse, target: WebSocketTarget, onDone: (result: TunnelResult) => void): void {
    new Tunnel(this.#registry, this.#connectTimeoutMs, this.#ca, new StreamEnd(req, res), target, onDone).start();
  }

  /** Number of established tunnels. */
  get size(): number {
    return this.#registry.open.size;
  }

  /** Closes the tunnels `where` selects, as the module comment says; resolves when they are all gone. */
  async close(options: CloseTunnelsOptions = {}): Promise<void> {
    const { code = 1001, reason = '', timeoutMs = DEFAULT_CLOSE_TIMEOUT_MS, where } = options;
    buildCloseFrame(code, reason, false); // Rejects a bad code or reason before any tunnel is touched.
    const selected = [...this.#registry.all].filter((tunnel) => where === undefined || where(tunnel.labels));
    await Promise.all(selected.map((tunnel) => tunnel.drain(code, reason, timeoutMs)));
  }
}

/** One client connection, from its upgrade request until both of its sockets are closed. */
class Tunnel {
  /**
   * connecting: waiting for the upstream's answer; answering: sending the client an HTTP response
   * before closing; open: switched protocols, relaying frames.
   */
  private phase: 'connecting' | 'answering' | 'open' | 'done' = 'connecting';
  private readonly startedAt = performance.now();
  private status = 0;
  private outcome: { closedBy: ClosedBy; error?: Error | undefined } | undefined;
  private request: http.ClientRequest | undefined;
  private response: http.IncomingMessage | undefined;
  private responseBytes = 0;
  private upstream: net.Socket | undefined;
  private fromClient: Pump | undefined;
  private fromUpstream: Pump | undefined;
  private openSockets = 0;
  private connectTimer: NodeJS.Timeout | undefined;
  private drainTimer: NodeJS.Timeout | undefined;
  private releaseTimer: NodeJS.Timeout | undefined;
  private resolveDone!: () => void;
  private readonly done = new Promise<void>((resolve) => (this.resolveDone = resolve));

  constructor(
    private readonly registry: Registry,
    private readonly connectTimeoutMs: number,
    private readonly ca: (string | Buffer)[] | undefined,
    private readonly end: ClientEnd,
    private readonly target: WebSocketTarget,
    private readonly onDone: (result: TunnelResult) => void,
  ) {
    this.client = end.socket;
  }

  private readonly client: Duplex;

  get labels(): Readonly<Record<string, string>> {
    return this.target.labels;
  }

  start(): void {
    if (this.client.destroyed) {
      // The caller may have awaited something before opening: a socket already closed will not say so again.
      this.settle('client');
      return;
    }
    this.registry.all.add(this);
    this.client.on('error', (err: Error) => this.onSocketError('client', err));
    this.client.on('close', () => this.onSocketClose('client'));
    const upgrade = this.end.protocol;
    if (upgrade?.trim().toLowerCase() !== 'websocket') {
      const message = `only WebSocket upgrades can be proxied, this request asks to upgrade to "${upgrade ?? ''}".`;
      this.refuse(400, message, new ProximationError('ERR_WS_UPGRADE_UNSUPPORTED', `${this.target.path}: ${message}`));
      return;
    }
    const origin = new URL(this.target.origin);
    if (origin.protocol !== 'http:' && origin.protocol !== 'https:') {
      const why = `WebSockets are tunnelled to HTTP/1.1 upstreams (http:, https:) only, and ${this.target.origin} speaks HTTP/2`;
      this.refuse(502, MESSAGES[502](this.target.origin), new ProximationError('ERR_WS_UPSTREAM_UNSUPPORTED', `cannot open WebSocket ${this.target.origin}${this.target.path}: ${why}; route WebSockets to an http:// or https:// upstream`));
      return;
    }
    try {
      this.request = this.connect(origin, upgrade);
    } catch (err) {
      // An origin that does not parse or a header value Node refuses to send.
      this.refuse(502, MESSAGES[502](this.target.origin), this.unreachable(err));
      return;
    }
    this.connectTimer = setTimeout(() => this.onConnectTimeout(), this.connectTimeoutMs);
  }

  private connect(origin: URL, upgrade: string): http.ClientRequest {
    const headers: Record<string, string | string[]> = {};
    for (const [name, value] of Object.entries(this.target.headers)) {
      const lower = name.toLowerCase();
      if (lower !== 'connection' && lower !== 'upgrade') headers[name] = value;
    }
    headers['connection'] = 'Upgrade';
    headers['upgrade'] = upgrade;
    Object.assign(headers, this.end.handshakeHeaders());
    const options: http.RequestOptions = {
      protocol: origin.protocol,
      hostname: origin.hostname.replace(/^\[(.*)\]$/, '$1'), // URL keeps the brackets of IPv6 literals.
      port: origin.port,
      method: this.end.method,
      path: this.target.path,
      headers,
      agent: false,
    };
    const request = origin.protocol === 'https:' ? https.request({ ...options, ca: this.ca }) : http.request(options);
    request.on('upgrade', (res: http.IncomingMessage, socket: net.Socket, upstreamHead: Buffer) =>
      this.onUpgrade(res, socket, upstreamHead),
    );
    request.on('response', (res: http.IncomingMessage) => this.onRefusal(res));
    request.on('error', (err: Error) => {
      // Errors after the answer, or after we gave up on the request, are ours and already handled.
      if (this.phase !== 'connecting' || this.outcome !== undefined) return;
      clearTimeout(this.connectTimer);
      this.refuse(502, MESSAGES[502](this.target.origin), this.unreachable(err));
    });
    request.end();
    return request;
  }

  private unreachable(cause: unknown): ProximationError {
    const reason = cause instanceof Error ? cause.message : String(cause);
    return new ProximationError(
      'ERR_WS_UPSTREAM_UNREACHABLE',
      `cannot open WebSocket ${this.target.origin}${this.target.path}: ${reason}; check that the upstream is running and the route's origin is right`,
      { cause },
    );
  }

  private onConnectTimeout(): void {
    this.refuse(
      504,
      MESSAGES[504](this.target.origin),
      new ProximationError(
        'ERR_WS_UPSTREAM_TIMEOUT',
        `upstream ${this.target.origin} did not answer the WebSocket upgrade of ${this.target.path} within ${this.connectTimeoutMs} ms`,
      ),
    );
    this.request?.destroy();
  }

  /** Answers the client with the proxy's own error response and closes its connection. */
  private refuse(status: number, message: string, error: ProximationError): void {
    this.phase = 'answering';
    this.status = status;
    this.conclude('error', error);
    this.responseBytes += this.end.refuse(status, message);
    this.release(this.client);
  }

  /** The upstream answered the upgrade with something else than 101: the client gets that answer. */
  private onRefusal(res: http.IncomingMessage): void {
    clearTimeout(this.connectTimer);
    this.phase = 'answering';
    this.response = res;
    this.status = res.statusCode ?? 0;
    this.end.refusalHead(res);
    res.on('data', (chunk: Buffer) => (this.responseBytes += chunk.length));
    res.on('end', () => {
      this.conclude('upstream');
      this.release(this.client);
    });
    res.on('error', (err: Error) => {
      this.conclude('upstream', err);
      this.client.destroy();
    });
    // The body is close-delimited: it arrives decoded from chunked encoding, and the connection ends with it.
    res.pipe(this.client, { end: false });
  }

  private onUpgrade(res: http.IncomingMessage, upstream: net.Socket, upstreamHead: Buffer): void {
    clearTimeout(this.connectTimer);
    const invalid = this.end.handshakeProblem(res);
    if (invalid !== undefined) {
      upstream.destroy();
      this.refuse(502, MESSAGES[502](this.target.origin), new ProximationError('ERR_WS_UPSTREAM_HANDSHAKE', `upstream ${this.target.origin} answered the WebSocket upgrade of ${this.target.path} with ${invalid}`));
      return;
    }
    this.phase = 'open';
    this.status = this.end.openStatus;
    this.upstream = upstream;
    this.openSockets = 2;
    this.registry.open.add(this);
    upstream.on('error', (err: Error) => this.onSocketError('upstream', err));
    upstream.on('close', () => this.onSocketClose('upstream'));
    tune(this.client);
    tune(upstream);
    const fromClient = new Pump('client', this.client, upstream, this);
    const fromUpstream = new Pump('upstream', upstream, this.client, this);
    this.fromClient = fromClient;
    this.fromUpstream = fromUpstream;
    // Both pumps start flowing on the next tick, so these bytes go out before any read later.
    this.client.cork();
    this.end.accept(res);
    if (upstreamHead.length > 0) fromUpstream.onData(upstreamHead);
    this.client.uncork();
    if (this.end.head.length > 0) fromClient.onData(this.end.head);
  }

  private onSocketError(side: Side, err: Error): void {
    this.conclude(side, err);
    this.socket(side)?.destroy();
  }

  private onSocketClose(side: Side): void {
    switch (this.phase) {
      case 'connecting':
        this.request?.destroy();
        this.settle('client');
        return;
      case 'answering':
        this.response?.destroy();
        this.settle('client');
        return;
      case 'open': {
        this.conclude(side);
        this.fromClient?.stop();
        this.fromUpstream?.stop();
        if (--this.openSockets === 0) {
          this.settle(side);
          return;
        }
        // Nothing can reach the closed side any more.
        const other = side === 'client' ? this.upstream : this.client;
        if (other !== undefined) this.release(other);
        return;
      }
      case 'done':
        return;
    }
  }

  private socket(side: Side): Duplex | undefined {
    return side === 'client' ? this.client : this.upstream;
  }

  private pumpFrom(side: Side): Pump | undefined {
    return side === 'client' ? this.fromClient : this.fromUpstream;
  }

  private pumpInto(side: Side): Pump | undefined {
    return side === 'client' ? this.fromUpstream : this.fromClient;
  }

  /** Records why the tunnel ends; the first reason wins. */
  conclude(closedBy: ClosedBy, error?: Error): void {
    this.outcome ??= { closedBy, error };
  }

  /**
   * During a drain: ends `side`'s connection once we sent it our Close frame and it has nothing
   * more to say (it answered with its own Close frame, or ended its side).
   */
  mayEnd(side: Side): void {
    const socket = this.socket(side);
    if (
      this.pumpFrom(side)?.sourceDone === true &&
      this.pumpInto(side)?.closeSent === true &&
      socket !== undefined &&
      !socket.writableEnded
    ) {
      socket.end();
    }
  }

  drain(code: number, reason: string, timeoutMs: number): Promise<void> {
    if (this.phase === 'done') return this.done;
    this.conclude('drain');
    if (this.phase !== 'open') {
      this.request?.destroy();
      this.response?.destroy();
      this.client.destroy();
      return this.done;
    }
    if (this.drainTimer === undefined) {
      this.fromUpstream?.sendClose(buildCloseFrame(code, reason, false));
      this.fromClient?.sendClose(buildCloseFrame(code, reason, true));
      this.drainTimer = setTimeout(() => {
        this.client.destroy();
        this.upstream?.destroy();
      }, timeoutMs);
    }
    return this.done;
  }

  /**
   * Ends `socket` once what was written to it is sent, drops what it still sends (reading is what
   * makes its end visible), and destroys it if it does not close in time.
   */
  private release(socket: Duplex): void {
    if (!socket.writableEnded) socket.end();
    socket.resume();
    this.releaseTimer ??= setTimeout(() => socket.destroy(), RELEASE_TIMEOUT_MS);
  }

  private settle(closedBy: ClosedBy): void {
    this.phase = 'done';
    clearTimeout(this.connectTimer);
    clearTimeout(this.drainTimer);
    clearTimeout(this.releaseTimer);
    this.registry.all.delete(this);
    this.registry.open.delete(this);
    this.outcome ??= { closedBy };
    this.onDone({
      status: this.status,
      bytesFromClient: this.fromClient?.bytes ?? 0,
      bytesFromUpstream: (this.fromUpstream?.bytes ?? 0) + this.responseBytes,
      durationMs: performance.now() - this.startedAt,
      closedBy: this.outcome.closedBy,
      error: this.outcome.error,
    });
    this.resolveDone();
  }
}

/** The client side of a tunnel: how it is answered, and its byte stream once the tunnel is open. */
interface ClientEnd {
  /** The client's connection (HTTP/1.1) or stream (HTTP/2), which carries the frames. */
  readonly socket: Duplex;
  /** Bytes the client sent past its request head. */
  readonly head: Buffer;
  /** The protocol the client asks for. */
  readonly protocol: string | undefined;
  /** The method of the upstream's upgrade request. */
  readonly method: string;
  /** The status that tells this client the tunnel is open. */
  readonly openStatus: number;
  /** Handshake fields the upstream's request needs besides the caller's headers. */
  handshakeHeaders(): Record<string, string>;
  /** What is wrong with the upstream's 101 for this client, or undefined. */
  handshakeProblem(res: http.IncomingMessage): string | undefined;
  /** Sends the proxy's own answer; the body bytes. */
  refuse(status: number, message: string): number;
  /** Sends the head of the upstream's refusal, whose body the tunnel then streams to `socket`. */
  refusalHead(res: http.IncomingMessage): void;
  /** Sends the answer that opens the tunnel, for the upstream's 101. */
  accept(res: http.IncomingMessage): void;
}

/** An HTTP/1.1 upgrade: answered in raw HTTP/1.1 on the socket Node handed over. */
class UpgradeEnd implements ClientEnd {
  readonly openStatus = 101;
  readonly protocol: string | undefined;
  readonly method: string;

  constructor(
    req: http.IncomingMessage,
    readonly socket: Duplex,
    readonly head: Buffer,
  ) {
    this.protocol = req.headers.upgrade;
    this.method = req.method ?? 'GET';
  }

  handshakeHeaders(): Record<string, string> {
    return {};
  }

  /** The client checks the upstream's Sec-WebSocket-Accept against its own key itself. */
  handshakeProblem(): undefined {
    return undefined;
  }

  refuse(status: number, message: string): number {
    return sendErrorToSocket(this.socket, status, message);
  }

  refusalHead(res: http.IncomingMessage): void {
    this.socket.write(`${statusLine(res.statusCode ?? 0, res.statusMessage)}${headerLines(clientResponseHeaders(res.headers))}connection: close\r\n\r\n`);
  }

  accept(res: http.IncomingMessage): void {
    this.socket.write(`${statusLine(101, res.statusMessage)}${rawHeaderLines(res.rawHeaders)}\r\n`);
  }
}

const WEBSOCKET_GUID = '258EAFA5-E914-47DA-95CA-C5AB0DC85B11';

/**
 * An RFC 8441 extended CONNECT: answered with HTTP/2 headers on its stream. HTTP/2 has no
 * Sec-WebSocket-Key/-Accept (the stream itself proves the handshake), so the proxy is the WebSocket
 * client towards the upstream and checks its answer as RFC 6455 4.1 tells a client to.
 */
class StreamEnd implements ClientEnd {
  readonly socket: ServerHttp2Stream;
  readonly head = Buffer.alloc(0);
  readonly protocol: string | undefined;
  readonly method = 'GET';
  readonly openStatus = 200;
  private readonly key = randomBytes(16).toString('base64');

  constructor(
    req: Http2ServerRequest,
    private readonly res: Http2ServerResponse,
  ) {
    this.socket = req.stream;
    const protocol = req.headers[':protocol'];
    this.protocol = typeof protocol === 'string' ? protocol : undefined;
  }

  handshakeHeaders(): Record<string, string> {
    return { 'sec-websocket-key': this.key };
  }

  handshakeProblem(res: http.IncomingMessage): string | undefined {
    const expected = createHash('sha1').update(this.key + WEBSOCKET_GUID).digest('base64');
    const accept = res.headers['sec-websocket-accept'];
    return accept === expected ? undefined : `Sec-WebSocket-Accept ${JSON.stringify(accept ?? null)}, not the one its key asks for`;
  }

  refuse(status: number, message: string): number {
    return sendError(this.res, status, message);
  }

  refusalHead(res: http.IncomingMessage): void {
    this.respond(res.statusCode ?? 502, res);
  }

  accept(res: http.IncomingMessage): void {
    this.respond(200, res);
  }

  private respond(status: number, res: http.IncomingMessage): void {
    if (this.socket.destroyed || this.socket.headersSent) return;
    const headers = clientResponseHeaders(res.headers);
    delete headers['sec-websocket-accept'];
    this.socket.respond({ ...headers, ':status': status });
  }
}

const enum PumpState {
  Forwarding,
  /** A Close frame went to the destination: the source's frames are dropped, its answer awaited. */
  CloseSent,
  /** One of the sockets is closed. */
  Stopped,
}

/** Copies one direction of an open tunnel, with back-pressure, knowing where its frames end. */
class Pump {
  bytes = 0;
  /** The source answered our Close frame or ended its side: nothing it sends matters any more. */
  sourceDone = false;
  private state = PumpState.Forwarding;
  private readonly tracker = new FrameBoundaryTracker();
  /** A Close frame waiting for the frame in flight to end. */
  private pendingClose: Buffer | undefined;

  constructor(
    private readonly from: Side,
    private readonly source: Duplex,
    private readonly destination: Duplex,
    private readonly tunnel: Tunnel,
  ) {
    source.on('data', this.onData);
    source.on('end', this.onEnd);
    destination.on('drain', this.onDrain);
  }

  get closeSent(): boolean {
    return this.state === PumpState.CloseSent;
  }

  readonly onData = (chunk: Buffer): void => {
    this.bytes += chunk.length;
    if (this.state !== PumpState.Forwarding) {
      this.awaitAnswer(chunk);
    } else if (this.pendingClose === undefined) {
      this.tracker.push(chunk);
      if (this.tracker.closeFrames !== 0) this.tunnel.conclude(this.from);
      this.forward(chunk);
    } else {
      this.forwardUntilBoundary(chunk, this.pendingClose);
    }
  };

  /** Sends `frame` to the destination at the next frame boundary, then stops forwarding. */
  sendClose(frame: Buffer): void {
    if (this.state !== PumpState.Forwarding || this.destination.writableEnded) return;
    this.pendingClose = frame;
    if (this.tracker.atBoundary) this.injectClose(frame);
  }

  stop(): void {
    this.state = PumpState.Stopped;
    this.source.off('data', this.onData);
    this.source.off('end', this.onEnd);
    this.destination.off('drain', this.onDrain);
  }

  private forward(chunk: Buffer): void {
    if (!this.destination.write(chunk)) this.source.pause();
  }

  private forwardUntilBoundary(chunk: Buffer, closeFrame: Buffer): void {
    const consumed = this.tracker.push(chunk, true);
    if (!this.tracker.atBoundary) {
      this.forward(chunk);
      return;
    }
    if (consumed > 0) this.destination.write(consumed === chunk.length ? chunk : chunk.subarray(0, consumed));
    this.injectClose(closeFrame);
    if (consumed < chunk.length) this.awaitAnswer(chunk.subarray(consumed));
  }

  private injectClose(frame: Buffer): void {
    this.destination.write(frame);
    this.state = PumpState.CloseSent;
    this.pendingClose = undefined;
    this.source.resume(); // Dropped bytes need no room downstream; the answer must be read.
    this.tunnel.mayEnd(this.from === 'client' ? 'upstream' : 'client');
  }

  /** Drops the source's frames, watching for the Close frame that answers ours. */
  private awaitAnswer(chunk: Buffer): void {
    const closeFramesBefore = this.tracker.closeFrames;
    this.tracker.push(chunk);
    if (this.tracker.closeFrames !== closeFramesBefore) {
      this.sourceDone = true;
      this.tunnel.mayEnd(this.from);
    }
  }

  private readonly onEnd = (): void => {
    this.sourceDone = true;
    this.tunnel.conclude(this.from);
    if (this.state === PumpState.CloseSent) this.tunnel.mayEnd(this.from);
    else if (!this.destination.writableEnded) this.destination.end();
  };

  private readonly onDrain = (): void => {
    this.source.resume();
  };
}

function tune(socket: Duplex): void {
  if (socket instanceof net.Socket) {
    socket.setNoDelay(true);
    socket.setKeepAlive(true, KEEPALIVE_INITIAL_DELAY_MS);
  }
}

function statusLine(status: number, message: string | undefined): string {
  return `HTTP/1.1 ${status} ${message || http.STATUS_CODES[status] || ''}\r\n`;
}

/** Node's raw header list as head lines, in their original case and order. */
function rawHeaderLines(rawHeaders: readonly string[]): string {
  let lines = '';
  for (let i = 0; i + 1 < rawHeaders.length; i += 2) lines += `${rawHeaders[i]!}: ${rawHeaders[i + 1]!}\r\n`;
  return lines;
}

function headerLines(headers: http.OutgoingHttpHeaders): string {
  let lines = '';
  for (const [name, value] of Object.entries(headers)) {
    if (value === undefined) continue;
    for (const item of Array.isArray(value) ? value : [value]) lines += `${name}: ${item}\r\n`;
  }
  return lines;
}
