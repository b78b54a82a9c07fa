/**
 * The HTTP/2 client to one upstream origin (`h2c:` in clear with prior knowledge, `h2:` over TLS with
 * ALPN h2; see shared/src/upstream-origin.ts), with the same contract towards the forwarding path and
 * the health checks as the HTTP/1.1 pool (upstream-pool.ts): `request` never throws, exactly one of
 * `onEnd` / `onError` per exchange, the same error codes, and `close()` / `destroy()` alike.
 *
 * Sessions: a request takes the first session that is up (or coming up) and has a stream to spare under
 * the upstream's SETTINGS_MAX_CONCURRENT_STREAMS (until a session's SETTINGS arrive, the limit the
 * upstream's last SETTINGS named, 100 before any did); when none has,
 * another session is opened. So one session carries everything until the upstream's limit, and the
 * limit is never exceeded. A session the upstream sent GOAWAY on takes no new streams and closes when
 * its streams are done; a session idle for `idleMs` is closed.
 *
 * Per exchange, as on HTTP/1.1 (upstream-connection.ts):
 * - The request goes out with `:authority` from the rewritten `Host`, `:scheme` of the origin, the
 *   connection-specific fields HTTP/2 forbids removed (RFC 9113 8.2.2; `TE` only as `trailers`); its
 *   body streams with back-pressure and ends with the client's trailers, if any.
 * - Response: 1xx as `onInformational`, the head as `onHead` (saying whether END_STREAM came with it), body chunks as `onData` (false pauses the
 *   stream until `resume()`), trailers with `onEnd`. A head or trailer list larger than
 *   `maxHeaderListSize` is an invalid response (ERR_UPSTREAM_RESPONSE), as an oversized HTTP/1.1 head is.
 * - Timeouts: `connectTimeoutMs` until the session is up (ERR_UPSTREAM_CONNECT_TIMEOUT); `timeoutMs` of
 *   silence once the request is completely sent and the session up, not while the upload runs or the
 *   client holds the response back (ERR_UPSTREAM_TIMEOUT).
 * - Failures: the session cannot be opened (refused, TLS verification, no h2 by ALPN):
 *   ERR_UPSTREAM_CONNECT, so the request was not sent (and the upstream is ejected, as for HTTP/1.1); the
 *   stream or session reset or closed before the response was complete: ERR_UPSTREAM_CLOSED; `abort()`:
 *   ERR_UPSTREAM_ABORTED (the stream is cancelled). A bodyless request the upstream refused unprocessed
 *   (REFUSED_STREAM, or beyond a GOAWAY's last stream) is sent once more on another session. A stream
 *   reset with ENHANCE_YOUR_CALM before any response retires its session (no new streams; it closes once
 *   its streams are done): Node's servers refuse new streams that way once a session queues more than
 *   its `maxSessionMemory`, which responses held back for a slow client fill; the request is sent once
 *   more on another session when it may be (`resendable`).
 *
 * TLS: the upstream's certificate is verified for its host name (SNI sent for names, not IP literals)
 * against Node's roots (with NODE_EXTRA_CA_CERTS), or `ca` when given (tests).
 */
import http2 from 'node:http2';
import net from 'node:net';
import type { Readable } from 'node:stream';
import { ProximationError, errorMessage, upstreamEndpoint } from '@proximation/shared';
import type { ResponseHeaders } from './http1-response-parser.js';
import { headerListSize } from '../listeners/h2-stream-limits.js';
import { ExchangeControl, resendable, unsendable, type ExchangeHandler, type UpstreamRequest } from './upstream-connection.js';

export interface Http2PoolOptions {
  connectTimeoutMs: number;
  timeoutMs: number;
  /** An idle session is closed after this. */
  idleMs: number;
  /**
   * Largest response header list, and trailer list, as RFC 9113 6.5.2 counts it (Node advertises its
   * own limit but does not enforce it on responses); larger fails the exchange as an invalid response.
   * Default 16 KiB, the HTTP/1.1 pool's head limit.
   */
  maxHeaderListSize?: number;
  /** Trust anchors (PEM) for h2: upstreams instead of Node's; tests use it. */
  ca?: string;
}

const DEFAULT_MAX_HEADER_LIST = 16 * 1024;
/** The largest DATA frame the upstream may send (SETTINGS_MAX_FRAME_SIZE; HTTP/2's smallest): one 'data' event's most. */
const MAX_FRAME_BYTES = 16_384;
/** Streams assumed available on a session whose SETTINGS have not arrived (nghttp2's own assumption). */
const INITIAL_STREAM_LIMIT = 100;
/** Fields HTTP/2 forbids in a request (RFC 9113 8.2.2), and Host, which becomes :authority. */
const CONNECTION_SPECIFIC = new Set(['host', 'connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'upgrade', 'http2-settings']);
const { NGHTTP2_CANCEL, NGHTTP2_ENHANCE_YOUR_CALM, NGHTTP2_FLAG_END_STREAM, NGHTTP2_REFUSED_STREAM } = http2.constants;

export class Http2UpstreamPool {
  /** The most response body one `onData` brings: one DATA frame. */
  readonly maxReadBytes = MAX_FRAME_BYTES;
  private readonly sessions = new Set<UpstreamSession>();
  private readonly authority: string;
  private closing = false;
  /** The upstream's stream limit as its latest SETTINGS named it: what a session assumes before its own arrive. */
  streamLimit = INITIAL_STREAM_LIMIT;
  private readonly waitingForEmpty: (() => void)[] = [];

  constructor(
    readonly origin: string,
    private readonly options: Http2PoolOptions,
  ) {
    this.authority = upstreamEndpoint(origin).authority;
  }

  request(request: UpstreamRequest, handler: ExchangeHandler): ExchangeControl {
    const control = new StreamControl();
    const refused = this.closing ? new ProximationError('ERR_UPSTREAM_CLOSED', `the connection pool of ${this.origin} is closed`) : unsendable(request);
    if (refused !== undefined) {
      handler.onError(refused);
      return control;
    }
    new StreamExchange(this, request, handler, control, this.options.timeoutMs, this.options.maxHeaderListSize ?? DEFAULT_MAX_HEADER_LIST).send(this.checkout());
    return control;
  }

  /** Open sessions (the tests watch how streams spread over them). */
  get sessionCount(): number {
    return this.sessions.size;
  }

  /** A session with a stream to spare, else a new one. */
  checkout(): UpstreamSession {
    for (const session of this.sessions) if (session.hasRoom) return session;
    const session = new UpstreamSession(this.origin, this.authority, this.options, this);
    this.sessions.add(session);
    return session;
  }

  /** Whether a refused stream may be sent again. */
  get open(): boolean {
    return !this.closing;
  }

  discard(session: UpstreamSession): void {
    this.sessions.delete(session);
    if (this.sessions.size === 0) for (const resolve of this.waitingForEmpty.splice(0)) resolve();
  }

  /** Stops new requests; sessions close once their streams are done. */
  close(): Promise<void> {
    this.closing = true;
    for (const session of this.sessions) session.close();
    return this.whenEmpty();
  }

  /** Drops every session at once, failing what is in flight. */
  destroy(): Promise<void> {
    this.closing = true;
    for (const session of this.sessions) session.destroy();
    return this.whenEmpty();
  }

  private whenEmpty(): Promise<void> {
    if (this.sessions.size === 0) return Promise.resolve();
    return new Promise((resolve) => this.waitingForEmpty.push(resolve));
  }
}

/** One HTTP/2 connection to the upstream and how many of its streams are in use. */
class UpstreamSession {
  readonly session: http2.ClientHttp2Session;
  private streams = 0;
  private usable = true;
  /** Up, and h2 by ALPN where TLS: a failure from here on is not a connect failure. */
  private connected = false;
  private settingsReceived = false;
  /** Set once the session failed before it was up: what each of its exchanges fails with. */
  failure: ProximationError | undefined;
  private readonly connectTimer: NodeJS.Timeout;
  private idleTimer: NodeJS.Timeout | undefined;

  constructor(
    origin: string,
    authority: string,
    private readonly options: Http2PoolOptions,
    private readonly pool: Http2UpstreamPool,
  ) {
    const endpoint = upstreamEndpoint(origin);
    const session = http2.connect(`${endpoint.tls ? 'https' : 'http'}://${authority}`, {
      settings: { enablePush: false, maxFrameSize: MAX_FRAME_BYTES },
      ...(endpoint.tls ? { servername: net.isIP(endpoint.hostname) === 0 ? endpoint.hostname : '', ca: options.ca, ALPNProtocols: ['h2'] } : {}),
    });
    this.session = session;
    this.connectTimer = setTimeout(() => {
      this.failure = new ProximationError('ERR_UPSTREAM_CONNECT_TIMEOUT', `could not connect within ${options.connectTimeoutMs} ms`);
      session.destroy();
    }, options.connectTimeoutMs);
    session.once('connect', (_session, socket) => {
      clearTimeout(this.connectTimer);
      if (endpoint.tls && (socket as { alpnProtocol?: string | false }).alpnProtocol !== 'h2') {
        this.failure = new ProximationError('ERR_UPSTREAM_CONNECT', 'could not connect: the upstream did not choose h2 in the TLS handshake (ALPN); use https:// for an HTTP/1.1 upstream');
        session.destroy();
        return;
      }
      this.connected = true;
    });
    session.on('remoteSettings', (settings: http2.Settings) => {
      this.settingsReceived = true;
      pool.streamLimit = settings.maxConcurrentStreams ?? INITIAL_STREAM_LIMIT;
    });
    // Each stream reports what it lost; this only classifies a failure before the session was up.
    session.on('error', (err: NodeJS.ErrnoException) => this.failureOf(err));
    session.on('goaway', () => (this.usable = false));
    session.once('close', () => {
      this.usable = false;
      clearTimeout(this.connectTimer);
      clearTimeout(this.idleTimer);
      pool.discard(this);
    });
    // The session must not keep the process alive on its own; streams in flight hold their clients anyway.
    session.unref();
  }

  get hasRoom(): boolean {
    if (!this.usable || this.session.closed || this.session.destroyed) return false;
    const limit = this.settingsReceived ? (this.session.remoteSettings.maxConcurrentStreams ?? INITIAL_STREAM_LIMIT) : this.pool.streamLimit;
    return this.streams < limit;
  }

  /**
   * What an exchange on this session failed with when the session never came up: ERR_UPSTREAM_CONNECT
   * (or the timeout or ALPN failure set before), so the request was not sent; undefined once it was up.
   * Node fails the session's streams before it emits the session's 'error', so either may ask first.
   */
  failureOf(err: NodeJS.ErrnoException | undefined): ProximationError | undefined {
    if (this.failure !== undefined || this.connected) return this.failure;
    // A stream the failing session cancelled carries the session's error as its cause.
    const cause = err?.code === 'ERR_HTTP2_STREAM_CANCEL' && err.cause instanceof Error ? (err.cause as NodeJS.ErrnoException) : err;
    let why = cause === undefined ? 'the connection closed before the HTTP/2 session was up' : (cause.code ?? cause.message);
    if (cause?.code === 'ERR_SSL_TLSV1_ALERT_NO_APPLICATION_PROTOCOL') why += ' (the upstream does not offer h2 by ALPN; use https:// for an HTTP/1.1 upstream)';
    this.failure = new ProximationError('ERR_UPSTREAM_CONNECT', `could not connect: ${why}`, cause === undefined ? undefined : { cause });
    return this.failure;
  }

  /** Calls `next` once the session is up (at once when it is). */
  whenConnected(next: () => void): void {
    if (this.session.connecting) this.session.once('connect', next);
    else next();
  }

  opened(): void {
    this.streams++;
    clearTimeout(this.idleTimer);
  }

  closed(): void {
    if (--this.streams > 0) return;
    if (!this.usable) {
      if (!this.session.closed) this.session.close();
      return;
    }
    this.idleTimer = setTimeout(() => this.close(), this.options.idleMs);
    this.idleTimer.unref();
  }

  close(): void {
    this.usable = false;
    this.session.close();
  }

  /** Takes no new stream; closes once the streams it has are done. */
  retire(): void {
    this.usable = false;
    if (this.streams === 0) this.session.close();
  }

  destroy(): void {
    this.usable = false;
    this.session.destroy();
  }
}

/** An exchange's handle when it runs on an HTTP/2 stream. */
class StreamControl extends ExchangeControl {
  exchange: StreamExchange | undefined;

  override abort(): void {
    if (this.aborted) return;
    this.aborted = true;
    this.exchange?.abort();
  }

  override resume(): void {
    this.exchange?.resume();
  }
}

/** One request on one stream (and, after a refusal, on one more). */
class StreamExchange {
  private stream: http2.ClientHttp2Stream | undefined;
  private session: UpstreamSession | undefined;
  private settled = false;
  private responded = false;
  private bodySent: boolean;
  private paused = false;
  private retried = false;
  private trailers: ResponseHeaders | undefined;
  private timer: NodeJS.Timeout | undefined;
  private detachBody: (() => void) | undefined;

  constructor(
    private readonly pool: Http2UpstreamPool,
    private readonly request: UpstreamRequest,
    private readonly handler: ExchangeHandler,
    private readonly control: StreamControl,
    private readonly timeoutMs: number,
    private readonly maxHeaderListSize: number,
  ) {
    control.exchange = this;
    this.bodySent = request.body === null;
  }

  send(session: UpstreamSession): void {
    this.session = session;
    const { request } = this;
    let stream: http2.ClientHttp2Stream;
    try {
      stream = session.session.request(requestHeaders(request, this.pool.origin), { endStream: request.body === null, waitForTrailers: request.body !== null });
    } catch (err) {
      // A session that failed or went away meanwhile; Node also refuses a header it cannot send.
      this.fail(session.failure ?? new ProximationError('ERR_UPSTREAM_REQUEST', `the request could not be sent: ${errorMessage(err)}`, { cause: err }));
      return;
    }
    this.stream = stream;
    session.opened();
    // After a retry the first stream's late events are not this exchange's any more.
    const current = (): boolean => this.stream === stream;
    stream.on('headers', (headers) => {
      if (current() && !this.settled) this.handler.onInformational?.(Number(headers[':status']), fields(headers));
    });
    stream.on('response', (headers: http2.IncomingHttpHeaders & http2.IncomingHttpStatusHeader, flags: number, raw: string[]) => {
      if (current() && this.fits(raw, 'head')) this.onResponse(headers, (flags & NGHTTP2_FLAG_END_STREAM) !== 0);
    });
    stream.on('data', (chunk: Buffer) => current() && this.onData(chunk));
    stream.on('trailers', (headers: http2.IncomingHttpHeaders, _flags: number, raw: string[]) => {
      if (current() && this.fits(raw, 'trailers')) this.trailers = fields(headers);
    });
    stream.on('end', () => current() && this.onEnd());
    stream.on('error', (err: NodeJS.ErrnoException) => current() && this.onStreamClosed(err));
    stream.once('close', () => {
      session.closed();
      if (current()) this.onStreamClosed(undefined);
    });
    if (request.body !== null) this.pumpBody(stream, request.body);
    else this.armWhenSent();
  }

  abort(): void {
    this.stream?.close(NGHTTP2_CANCEL);
    this.fail(new ProximationError('ERR_UPSTREAM_ABORTED', 'the request to the upstream was cancelled'));
  }

  resume(): void {
    if (!this.paused || this.settled) return;
    this.paused = false;
    this.stream?.resume();
    this.arm();
  }

  private pumpBody(stream: http2.ClientHttp2Stream, body: Readable): void {
    const onData = (chunk: Buffer | string): void => {
      if (!stream.write(chunk)) body.pause();
    };
    const onDrain = (): void => {
      body.resume();
    };
    const onEnd = (): void => {
      cleanup();
      if (this.request.bodyCut?.(body) === true) {
        this.abort();
        return;
      }
      stream.once('wantTrailers', () => {
        // Empty trailers make Node end the stream with an empty DATA frame instead.
        stream.sendTrailers(trailerFields(this.request.trailers?.() ?? []));
        this.bodySent = true;
        this.armWhenSent();
      });
      stream.end();
    };
    // A client stream that closes without 'end' lost part of the body: the upstream must not take the rest as complete.
    const onClose = (): void => {
      cleanup();
      if (!this.bodySent) this.abort();
    };
    const cleanup = (): void => {
      body.off('data', onData);
      body.off('end', onEnd);
      body.off('close', onClose);
      stream.off('drain', onDrain);
      this.detachBody = undefined;
    };
    this.detachBody = () => {
      cleanup();
      body.resume();
    };
    body.on('data', onData);
    body.once('end', onEnd);
    body.once('close', onClose);
    stream.on('drain', onDrain);
  }

  /** Whether a received header list is within the limit; if not, the exchange fails and the stream is cancelled. */
  private fits(raw: readonly string[], what: 'head' | 'trailers'): boolean {
    if (this.settled || headerListSize(raw) <= this.maxHeaderListSize) return true;
    this.stream?.close(NGHTTP2_CANCEL);
    this.fail(new ProximationError('ERR_UPSTREAM_RESPONSE', `the upstream sent an invalid response: its ${what === 'head' ? 'head is' : 'trailers are'} larger than ${this.maxHeaderListSize} bytes`));
    return false;
  }

  private onResponse(headers: http2.IncomingHttpHeaders & http2.IncomingHttpStatusHeader, ended: boolean): void {
    if (this.settled) return;
    this.responded = true;
    this.arm();
    this.handler.onHead(Number(headers[':status']), fields(headers), ended);
  }

  private onData(chunk: Buffer): void {
    if (this.settled) return;
    if (this.handler.onData(chunk)) {
      this.arm();
      return;
    }
    this.paused = true;
    clearTimeout(this.timer);
    this.stream!.pause();
  }

  private onEnd(): void {
    if (this.settled || !this.responded) return;
    this.settle();
    // The response is complete; a request body the upstream did not wait for is not sent on.
    if (!this.bodySent) this.stream!.close();
    this.handler.onEnd(this.trailers);
  }

  private onStreamClosed(err: NodeJS.ErrnoException | undefined): void {
    if (this.settled) return;
    const stream = this.stream!;
    const session = this.session!;
    const connectFailure = session.failureOf(err);
    if (connectFailure !== undefined) {
      this.fail(connectFailure);
      return;
    }
    const refused = stream.rstCode === NGHTTP2_REFUSED_STREAM || err?.code === 'ERR_HTTP2_GOAWAY_SESSION';
    const full = stream.rstCode === NGHTTP2_ENHANCE_YOUR_CALM && !this.responded;
    if (full) session.retire();
    if ((refused ? this.request.body === null : full && resendable(this.request)) && !this.responded && !this.retried && this.pool.open) {
      // The upstream did not process it (RFC 9113 8.7): it can go on another session as it is.
      this.retried = true;
      this.send(this.pool.checkout());
      return;
    }
    const why = err !== undefined ? (err.code ?? err.message) : `the stream was reset (HTTP/2 error code ${stream.rstCode})`;
    this.fail(new ProximationError('ERR_UPSTREAM_CLOSED', `the upstream closed the stream before the response was complete: ${why}`, err === undefined ? undefined : { cause: err }));
  }

  /** The response timer once the request is all sent and the session up; the connect timeout covers the rest. */
  private armWhenSent(): void {
    this.session!.whenConnected(() => this.arm());
  }

  /** (Re)starts the silence timer, unless the upload runs or the client holds the response back. */
  private arm(): void {
    if (this.settled || !this.bodySent || this.paused) return;
    if (this.timer === undefined) this.timer = setTimeout(() => this.onTimeout(), this.timeoutMs);
    else this.timer.refresh();
  }

  private onTimeout(): void {
    if (this.settled || this.paused) return;
    this.stream?.close(NGHTTP2_CANCEL);
    this.fail(new ProximationError('ERR_UPSTREAM_TIMEOUT', `the upstream sent nothing for ${this.timeoutMs} ms`));
  }

  private fail(error: ProximationError): void {
    if (this.settled) return;
    this.settle();
    this.handler.onError(error);
  }

  private settle(): void {
    this.settled = true;
    clearTimeout(this.timer);
    this.detachBody?.();
    this.control.exchange = undefined;
  }
}

/** The upstream request's header block: pseudo-headers first, then the fields HTTP/2 may carry. */
function requestHeaders(request: UpstreamRequest, origin: string): http2.OutgoingHttpHeaders {
  const { headers } = request;
  const endpoint = upstreamEndpoint(origin);
  const out: http2.OutgoingHttpHeaders = {
    ':method': request.method,
    ':scheme': endpoint.tls ? 'https' : 'http',
    ':authority': endpoint.authority,
    ':path': request.path,
  };
  for (let i = 0; i < headers.length; i += 2) {
    const name = headers[i]!.toLowerCase();
    const value = headers[i + 1]!;
    if (name === 'host') out[':authority'] = value;
    else if (name === 'te' ? value.trim().toLowerCase() === 'trailers' : !CONNECTION_SPECIFIC.has(name)) add(out, name, value);
  }
  return out;
}

function trailerFields(flat: readonly string[]): http2.OutgoingHttpHeaders {
  const out: http2.OutgoingHttpHeaders = {};
  for (let i = 0; i < flat.length; i += 2) add(out, flat[i]!.toLowerCase(), flat[i + 1]!);
  return out;
}

function add(out: http2.OutgoingHttpHeaders, name: string, value: string): void {
  const previous = out[name];
  if (previous === undefined) out[name] = value;
  else out[name] = Array.isArray(previous) ? [...previous, value] : [String(previous), value];
}

/** A received header block without its pseudo-headers, in the parser's shape. */
function fields(headers: http2.IncomingHttpHeaders): ResponseHeaders {
  const out: ResponseHeaders = {};
  for (const name of Object.keys(headers)) {
    if (name.charCodeAt(0) === 58 /* ':' */) continue;
    const value = headers[name];
    if (value !== undefined) out[name] = value;
  }
  return out;
}
