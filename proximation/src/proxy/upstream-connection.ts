/**
 * One keep-alive HTTP/1.1 connection to an upstream, carrying one exchange at a time (no pipelining).
 *
 * Guarantees:
 * - The request head goes out in one write; a body streams with back-pressure (the client's stream is
 *   paused while the socket's buffer is full), framed by its Content-Length when the client gave one,
 *   else chunked. Node's server validated the client's method, path and header values before they came
 *   here, and `unsendable` finds a CR, LF or NUL anyway, so nothing can split the request.
 * - A chunked request body ends with the client's trailers (`request.trailers`); the response's interim
 *   (1xx) responses and trailers go to the handler (`onInformational`, `onEnd(trailers)`), which
 *   relays them (trailers.ts): an HTTP/2 upstream connection calls the same handler the same way.
 * - The response is read by the strict parser (http1-response-parser.ts); its body is handed over as it
 *   arrives, in buffers the handler may keep, and reading stops while the handler's sink is full
 *   (`onData` returned false) until `resume()`.
 * - Timeouts: `connectTimeoutMs` until the connection is up; `timeoutMs` of silence once the request is
 *   completely sent (to the response head, and between body reads), never while the upload is still
 *   running (the client's own timeouts cover that) or while reading is paused for a slow client: after
 *   those, the upstream gets a full `timeoutMs` again.
 * - Exactly one of `onEnd` / `onError` per exchange. Errors are ProximationErrors: ERR_UPSTREAM_CONNECT
 *   (cannot connect; the request was not sent), ERR_UPSTREAM_CONNECT_TIMEOUT, ERR_UPSTREAM_TIMEOUT,
 *   ERR_UPSTREAM_RESPONSE (invalid response), ERR_UPSTREAM_CLOSED (closed or reset before the response
 *   was complete), ERR_UPSTREAM_ABORTED (`abort()`, e.g. the client went away), ERR_PROXY_INTERNAL (a handler threw
 *   while relaying the response).
 * - After the exchange the connection is handed back to its owner for reuse only if the response said
 *   it may be, the whole request was sent and nothing failed; otherwise it is destroyed. `idleUntil`
 *   says until when the owner may reuse it: the upstream's `Keep-Alive: timeout=N` less a second, else
 *   `idleMs`, never more than `maxIdleMs`. The owner checks that when it takes the connection (a timer
 *   per idle connection would cost a timer update per request); an idle connection also closes when the
 *   upstream closes it or after `timeoutMs` of silence.
 */
import net, { type Socket } from 'node:net';
import tls from 'node:tls';
import type { Readable } from 'node:stream';
import { ProximationError, errorMessage, isProximationError } from '@proximation/shared';
import { ResponseParser, type ResponseHeaders } from './http1-response-parser.js';

export interface UpstreamRequest {
  method: string;
  path: string;
  /** Flat [name, value, ...] list, already rewritten for the upstream (forwarded-headers.ts). */
  headers: readonly string[];
  /** The client's body; null when it has none. */
  body: Readable | null;
  /**
   * Asked when `body` ends: true if it ended because the client cut it off, not because it finished
   * (Node's HTTP/2 compatibility API ends the request stream of a reset stream as if it were complete).
   * The exchange is then aborted: sending the chunked terminator would hand the upstream a truncated
   * body as a whole one.
   */
  bodyCut?: (body: Readable) => boolean;
  /**
   * Asked once `body` has ended: the client's trailer fields to send after it, flat [name, value, ...]
   * (trailers.ts). Sent only when the body goes chunked, i.e. the request has no Content-Length.
   */
  trailers?: () => readonly string[];
}

/** What a connection to an upstream (of whatever protocol) tells the one exchange it carries. */
export interface ExchangeHandler {
  /** An interim (1xx) response, before `onHead`. */
  onInformational?(status: number, headers: ResponseHeaders): void;
  /**
   * @param ended the head ended the response (an HTTP/2 HEADERS frame with END_STREAM, as a gRPC
   *   trailers-only response is): `onEnd` follows with no `onData`, and the client should get it as one
   *   frame too. HTTP/1.1 never says so: the parser reports the end of a bodyless response as `onEnd`.
   */
  onHead(status: number, headers: ResponseHeaders, ended?: boolean): void;
  /** false: the sink is full; no more data until the exchange's `resume()`. */
  onData(chunk: Buffer): boolean;
  /** @param trailers the response's trailer fields, undefined when it had none */
  onEnd(trailers?: ResponseHeaders): void;
  onError(error: ProximationError): void;
}

export interface ConnectionOptions {
  connectTimeoutMs: number;
  timeoutMs: number;
  /** How long an idle connection is kept when the upstream does not say (`Keep-Alive: timeout=N`). */
  idleMs: number;
  /** The most an idle connection is kept, whatever the upstream says. */
  maxIdleMs: number;
  /** Largest response head (and trailer section) in bytes; the parser's default (16 KiB) when unset. */
  maxHeadBytes?: number;
  /** Trust anchors (PEM) for https: upstreams instead of Node's; tests use it. */
  ca?: string;
}

/** What a connection tells the pool it belongs to. */
export interface ConnectionOwner {
  /** The exchange ended and the connection can carry another. */
  release(connection: UpstreamConnection): void;
  /** The connection is gone (closed, failed, or not reusable). */
  discard(connection: UpstreamConnection): void;
  /**
   * A reused connection failed before any byte of the response came back, on a request that can safely
   * be sent again: the upstream most likely closed it while it sat idle. Returns true if the owner took
   * the exchange over (on a new connection), false to fail it.
   */
  retry(request: UpstreamRequest, handler: ExchangeHandler, exchange: ExchangeControl): boolean;
}

/** The caller's handle on an exchange, valid across the retry on another connection. */
export class ExchangeControl {
  connection: UpstreamConnection | undefined;
  aborted = false;

  abort(): void {
    if (this.aborted) return;
    this.aborted = true;
    this.connection?.abort();
  }

  resume(): void {
    this.connection?.resume();
  }
}

const RETRIABLE_METHODS = new Set(['GET', 'HEAD', 'OPTIONS', 'TRACE', 'PUT', 'DELETE']);
const NEEDS_LENGTH = new Set(['POST', 'PUT', 'PATCH']);
const UNSENDABLE = /[\r\n\0]/;
const KEEP_ALIVE_TIMEOUT = /(?:^|[,;\s])timeout=(\d+)/i;
/**
 * Every upstream socket reads into this one buffer (Node's `onread`), which is reused as soon as a read
 * has been parsed: a socket's 'data' events would allocate a buffer per read and run it through the
 * stream machinery (paired runs: 9-18% less CPU per keep-alive request for a minimal forwarder, about
 * 3% for proximation). So nothing may keep a slice of it past `onSocketData`: the parser copies what it
 * holds between reads, and `onBody` copies the body.
 */
const READ_BUFFER = Buffer.allocUnsafe(64 * 1024);
/** The most body one read hands to a handler (client-buffers.ts sizes an exchange's credit by it). */
export const UPSTREAM_READ_BYTES = READ_BUFFER.length;

interface Active {
  request: UpstreamRequest;
  handler: ExchangeHandler;
  control: ExchangeControl;
  bodySent: boolean;
  paused: boolean;
  idleMs: number | undefined;
  /** Stops streaming the client's body here; what is left of it is read and dropped by the client's side. */
  detachBody: (() => void) | undefined;
}

export class UpstreamConnection {
  private readonly parser: ResponseParser;
  private active: Active | undefined;
  private connected = false;
  private closed = false;
  /** Exchanges completed on this connection: a failure on a reused one may just be a stale connection. */
  private served = 0;
  /** While idle: when the owner must stop reusing it (epoch ms). */
  idleUntil = 0;
  /** The timer ran out while the exchange was not waiting on the upstream (see onTimeout). */
  private lapsed = false;

  private readonly socket: Socket;

  private constructor(
    connect: (onread: net.OnReadOpts) => Socket,
    private readonly owner: ConnectionOwner,
    private readonly options: ConnectionOptions,
  ) {
    const socket = connect({ buffer: READ_BUFFER, callback: (length) => this.onSocketData(READ_BUFFER.subarray(0, length)) });
    this.socket = socket;
    socket.setNoDelay(true);
    socket.setKeepAlive(true, 60_000);
    this.parser = new ResponseParser({
      onInformational: (status, headers) => this.active?.handler.onInformational?.(status, headers),
      onHead: (status, headers) => this.onHead(status, headers),
      onBody: (chunk) => this.onBody(chunk),
      onEnd: (reusable, trailers) => this.onEnd(reusable, trailers),
    }, options.maxHeadBytes);
    socket.setTimeout(options.connectTimeoutMs);
    socket.once(socket instanceof tls.TLSSocket ? 'secureConnect' : 'connect', () => {
      this.connected = true;
      socket.setTimeout(options.timeoutMs);
    });
    socket.on('timeout', () => this.onTimeout());
    socket.on('end', () => this.onSocketEnd());
    socket.on('error', (err) => this.onSocketError(err));
    socket.on('close', () => this.onSocketClose());
    socket.on('drain', () => this.active?.request.body?.resume());
  }

  /** Opens a connection to an http: or https: origin; the request may be sent before it is up. */
  static open(origin: URL, owner: ConnectionOwner, options: ConnectionOptions): UpstreamConnection {
    const port = Number(origin.port) || (origin.protocol === 'https:' ? 443 : 80);
    const host = origin.hostname.startsWith('[') ? origin.hostname.slice(1, -1) : origin.hostname;
    // tls.connect takes `onread` as net.connect does (documented), @types/node 20 just does not list it.
    const connect = (onread: net.OnReadOpts): Socket =>
      origin.protocol === 'https:'
        ? tls.connect({ host, port, servername: net.isIP(host) === 0 ? host : undefined, ALPNProtocols: ['http/1.1'], ca: options.ca, onread } as tls.ConnectionOptions)
        : net.connect({ host, port, onread });
    return new UpstreamConnection(connect, owner, options);
  }

  /** Sends a request; the connection must be idle. */
  send(request: UpstreamRequest, handler: ExchangeHandler, control: ExchangeControl): void {
    const active: Active = { request, handler, control, bodySent: request.body === null, paused: false, idleMs: undefined, detachBody: undefined };
    this.active = active;
    control.connection = this;
    const { body } = request;
    this.parser.begin(request.method);
    // Writing refreshes the socket's timer, whether or not it lapsed before.
    this.lapsed = false;
    this.socket.write(requestHead(request), 'latin1');
    if (body !== null) this.pumpBody(active, body);
  }

  abort(): void {
    this.fail(new ProximationError('ERR_UPSTREAM_ABORTED', 'the request to the upstream was cancelled'));
  }

  resume(): void {
    const active = this.active;
    if (active === undefined || !active.paused) return;
    active.paused = false;
    this.rearmIfLapsed();
    this.socket.resume();
  }

  /** Closes an idle connection. */
  close(): void {
    this.socket.destroy();
  }

  private pumpBody(active: Active, body: Readable): void {
    const chunked = !hasContentLength(active.request.headers);
    const onData = (chunk: Buffer | string): void => {
      if (this.active !== active) return;
      const ok = chunked ? this.writeChunk(chunk) : this.socket.write(chunk);
      if (!ok) body.pause();
    };
    const onEnd = (): void => {
      cleanup();
      if (this.active !== active) return;
      if (active.request.bodyCut?.(body) === true) {
        this.abort();
        return;
      }
      if (chunked && !this.writeLastChunk(active.request.trailers?.() ?? [])) return;
      active.bodySent = true;
      this.rearmIfLapsed();
    };
    // A client stream that ends without 'end' lost part of the body: the upstream must not take the rest as complete.
    const onClose = (): void => {
      cleanup();
      if (this.active === active && !active.bodySent) this.abort();
    };
    const cleanup = (): void => {
      body.off('data', onData);
      body.off('end', onEnd);
      body.off('close', onClose);
      active.detachBody = undefined;
    };
    active.detachBody = () => {
      cleanup();
      body.resume();
    };
    body.on('data', onData);
    body.once('end', onEnd);
    body.once('close', onClose);
  }

  private writeChunk(chunk: Buffer | string): boolean {
    const length = typeof chunk === 'string' ? Buffer.byteLength(chunk) : chunk.length;
    if (length === 0) return true;
    this.socket.cork();
    this.socket.write(`${length.toString(16)}\r\n`, 'latin1');
    this.socket.write(chunk);
    const ok = this.socket.write('\r\n', 'latin1');
    this.socket.uncork();
    return ok;
  }

  /** The last chunk and the trailer section; false (and the exchange failed) when a trailer could split the request. */
  private writeLastChunk(trailers: readonly string[]): boolean {
    if (trailers.length > 0 && UNSENDABLE.test(trailers.join(''))) {
      this.fail(new ProximationError('ERR_UPSTREAM_REQUEST', 'a trailer field of the request holds CR, LF or NUL'));
      return false;
    }
    let last = '0\r\n';
    for (let i = 0; i < trailers.length; i += 2) last += `${trailers[i]}: ${trailers[i + 1]}\r\n`;
    this.socket.write(`${last}\r\n`, 'latin1');
    return true;
  }

  /** false pauses the socket (`onread`'s contract). */
  private onSocketData(data: Buffer): boolean {
    try {
      this.parser.execute(data);
    } catch (err) {
      this.fail(asProximationError(err));
      return true;
    }
    // Paused only now, not when the sink filled: a response that ended in this read needs no pause
    // (and no resume), and each costs a system call.
    return this.active?.paused !== true;
  }

  private onHead(status: number, headers: ResponseHeaders): void {
    const active = this.active!;
    active.idleMs = keepAliveHint(headers['keep-alive']);
    active.handler.onHead(status, headers);
  }

  private onBody(chunk: Buffer): void {
    const active = this.active;
    if (active === undefined || chunk.length === 0) return;
    // A copy: the chunk is a slice of READ_BUFFER, and the handler's sink may hold it for a while.
    if (!active.handler.onData(Buffer.from(chunk)) && this.active === active) active.paused = true;
  }

  private onEnd(reusable: boolean, trailers: ResponseHeaders | undefined): void {
    const active = this.active!;
    this.settle(active);
    this.served++;
    const idleMs = Math.min(active.idleMs ?? this.options.idleMs, this.options.maxIdleMs);
    if (reusable && active.bodySent && !this.closed && idleMs > 0) {
      this.idleUntil = Date.now() + idleMs;
      this.owner.release(this);
    } else {
      this.destroy();
    }
    active.handler.onEnd(trailers);
  }

  /**
   * The socket's timer runs all the time (re-arming it costs a timer object per call); a lapse while
   * the client is still uploading or holds the response back is not the upstream's fault: it is
   * noted, and the timer re-armed for a full period once the connection waits on the upstream again.
   */
  private onTimeout(): void {
    const active = this.active;
    if (active === undefined) {
      this.destroy();
      return;
    }
    if (this.connected && (!active.bodySent || active.paused)) {
      this.lapsed = true;
      return;
    }
    this.fail(
      this.connected
        ? new ProximationError('ERR_UPSTREAM_TIMEOUT', `the upstream sent nothing for ${this.options.timeoutMs} ms`)
        : new ProximationError('ERR_UPSTREAM_CONNECT_TIMEOUT', `could not connect within ${this.options.connectTimeoutMs} ms`),
    );
  }

  private onSocketEnd(): void {
    if (this.active === undefined) {
      this.destroy();
      return;
    }
    try {
      this.parser.end();
    } catch (err) {
      this.fail(asProximationError(err));
    }
  }

  private onSocketError(err: NodeJS.ErrnoException): void {
    if (!this.connected) {
      this.fail(new ProximationError('ERR_UPSTREAM_CONNECT', `could not connect: ${err.code ?? err.message}`, { cause: err }));
      return;
    }
    this.fail(new ProximationError('ERR_UPSTREAM_CLOSED', `the connection failed before the response was complete: ${err.code ?? err.message}`, { cause: err }));
  }

  private onSocketClose(): void {
    if (this.active !== undefined) {
      this.fail(new ProximationError('ERR_UPSTREAM_CLOSED', 'the upstream closed the connection before the response was complete'));
    }
    this.destroy();
  }

  /** Ends the exchange in flight with `error` (or hands it to the owner for one retry) and drops the connection. */
  private fail(error: ProximationError): void {
    const active = this.active;
    this.destroy();
    if (active === undefined) return;
    this.settle(active);
    const stale =
      this.served > 0 &&
      !this.parser.responseStarted &&
      resendable(active.request) &&
      !active.control.aborted &&
      error.code === 'ERR_UPSTREAM_CLOSED';
    if (stale && this.owner.retry(active.request, active.handler, active.control)) return;
    active.handler.onError(error);
  }

  private rearmIfLapsed(): void {
    const active = this.active;
    if (!this.lapsed || active === undefined || !active.bodySent || active.paused) return;
    this.lapsed = false;
    this.socket.setTimeout(this.options.timeoutMs);
  }

  private settle(active: Active): void {
    this.active = undefined;
    active.control.connection = undefined;
    active.detachBody?.();
  }

  private destroy(): void {
    if (this.closed) return;
    this.closed = true;
    this.socket.destroy();
    this.owner.discard(this);
  }
}

/** The parser throws ProximationErrors; anything else came from a handler, and ends the exchange as well. */
function asProximationError(err: unknown): ProximationError {
  if (isProximationError(err)) return err;
  return new ProximationError('ERR_PROXY_INTERNAL', `relaying the upstream's response failed: ${errorMessage(err)}`, { cause: err });
}

/**
 * What would let a value end the line it is on, or undefined. Node's HTTP/1.1 and HTTP/2 servers already
 * refuse CR, LF and NUL in what clients send; this is the last line of defence against request splitting.
 */
/**
 * Whether a request the upstream may or may not have begun to process can be sent again: no body, and a
 * method RFC 9110 9.2.2 makes idempotent (a reused connection the upstream had just closed, an HTTP/2
 * stream refused for lack of room).
 */
export function resendable(request: UpstreamRequest): boolean {
  return request.body === null && RETRIABLE_METHODS.has(request.method);
}

export function unsendable(request: UpstreamRequest): ProximationError | undefined {
  // One scan of one string: a regular expression per header would cost more on every request.
  if (!UNSENDABLE.test(request.method + request.path + request.headers.join(''))) return undefined;
  return new ProximationError('ERR_UPSTREAM_REQUEST', `the request ${request.method} ${JSON.stringify(request.path)} holds CR, LF or NUL in its target or headers`);
}

function requestHead(request: UpstreamRequest): string {
  const { headers } = request;
  let head = `${request.method} ${request.path} HTTP/1.1\r\n`;
  for (let i = 0; i < headers.length; i += 2) head += `${headers[i]}: ${headers[i + 1]}\r\n`;
  if (request.body !== null) {
    if (!hasContentLength(headers)) head += 'transfer-encoding: chunked\r\n';
  } else if (NEEDS_LENGTH.has(request.method) && !hasContentLength(headers)) {
    head += 'content-length: 0\r\n';
  }
  return `${head}\r\n`;
}

function hasContentLength(headers: readonly string[]): boolean {
  for (let i = 0; i < headers.length; i += 2) {
    const name = headers[i]!;
    if (name.length === 14 && name.toLowerCase() === 'content-length') return true;
  }
  return false;
}

/** How long the upstream says it keeps an idle connection (`Keep-Alive: timeout=N`), less a second for the race. */
function keepAliveHint(value: string | string[] | undefined): number | undefined {
  if (typeof value !== 'string') return undefined;
  const match = KEEP_ALIVE_TIMEOUT.exec(value);
  return match === null ? undefined : Math.max(0, Number(match[1]) * 1000 - 1000);
}
