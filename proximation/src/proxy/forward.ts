/**
 * Forwards one request to one upstream through its connection pool and streams the response back.
 *
 * Both bodies stream with back-pressure: the request body is read as the upstream accepts it, and once
 * 128 KiB of the response wait for the client, the upstream is read no further until the client has
 * taken them, so a 1 GB body in either direction holds only that and socket buffers. With `buffers`, the
 * response also reads on only while the client's connection and address have buffer credit
 * (client-buffers.ts), and the request waits for its first credit before it goes upstream (a client that
 * goes away meanwhile ends it with status 0). A client that goes
 * away aborts the upstream request. Failures map as nginx maps them: cannot connect, a broken connection
 * or an invalid response → 502, connect or response timeout → 504; a failure after the response headers
 * were sent can only cut the client's response short.
 *
 * A request that could not reach its upstream (connection refused, unreachable, connect timeout) is
 * tried once on each other upstream of the version, but only when it has no body: a body stream that
 * may have been read in part cannot be sent again.
 *
 * The upstream's Strict-Transport-Security header is dropped when the response already has one (the
 * site's own HSTS setting, put there by the proxy handler): the site's setting in the routing table is
 * what the operator decided for the host, and a response must carry one policy, not two (RFC 6797
 * 8.1: browsers heed only the first). Sites without HSTS pass the upstream's header through.
 *
 * Interim (1xx) responses and trailers are relayed as trailers.ts says. A head that ended the upstream's
 * stream (HTTP/2 END_STREAM on HEADERS, as in a gRPC trailers-only response) ends the client's response
 * with it, in one HEADERS frame on HTTP/2. A 204 or 304 goes out without
 * Content-Length (RFC 9110 8.6 forbids it on 204; on 304 an HTTP/2 client would take it as the length of
 * a body that never comes) and without a body (the parser reads none).
 *
 * `onDone` is called exactly once, with what the access log and the passive health check need: when a
 * timeout ended the exchange, which one (an upstream timeout, or the proxy's cut of the client side as
 * client-cuts.ts records it), so that a cut is not logged as a client that went away.
 */
import { Http2ServerRequest } from 'node:http2';
import type { Readable } from 'node:stream';
import type { ProximationError } from '@proximation/shared';
import { CUT_SETTINGS, cutOf, type ClientCut } from './client-cuts.js';
import type { BufferAccount, ClientBuffers } from './client-buffers.js';
import { clientResponseHeaders } from './forwarded-headers.js';
import { MESSAGES, sendError } from './error-responses.js';
import type { ResponseHeaders } from './http1-response-parser.js';
import { canAnnounceTrailers, relayInformational, requestTrailers, responseTrailers } from './trailers.js';
import type { ExchangeControl, ExchangeHandler } from './upstream-connection.js';
import type { ProxyRequest, ProxyResponse, ResponseSink } from './types.js';
import type { Upstream } from './upstreams.js';

export interface ForwardResult {
  status: number;
  /** The upstream that answered, or the last one tried. */
  upstream?: string;
  /** Response body bytes sent to the client. */
  bytes: number;
  /** Set when the exchange failed; the status then says how the client saw it (0: cut short or gone). */
  error?: Error;
  /** The timeout (or drain) that ended it, when one did: for the access log. */
  timeout?: ExchangeTimeout;
}

/** What the access log says ended an exchange: a cut of the client side by the proxy, or an upstream timeout. */
export type ExchangeTimeout = ClientCut | 'upstream' | 'upstream-connect';

export const STRICT_TRANSPORT_SECURITY = 'strict-transport-security';

/** How much of a response may wait for a slow client before the upstream is read no further. */
const CLIENT_BUFFER_BYTES = 128 * 1024;

/** Failures that prove the request never reached the upstream. */
const NOT_SENT = new Set(['ERR_UPSTREAM_CONNECT', 'ERR_UPSTREAM_CONNECT_TIMEOUT']);
const TIMEOUTS: ReadonlyMap<string, ExchangeTimeout> = new Map([
  ['ERR_UPSTREAM_CONNECT_TIMEOUT', 'upstream-connect'],
  ['ERR_UPSTREAM_TIMEOUT', 'upstream'],
]);

class ClientGone extends Error {
  constructor(cut: ClientCut | undefined) {
    super(
      cut === undefined
        ? 'the client closed the connection before the response was complete'
        : `${CUT_SETTINGS[cut]} ended the client's ${cut === 'drain' ? 'connection at shutdown' : 'connection or stream'} before the response was complete`,
    );
    this.name = 'ClientGone';
  }
}

class ForwardHandler implements ExchangeHandler {
  control: ExchangeControl | undefined;
  private status = 0;
  private bytes = 0;
  private settled = false;
  private clientGone = false;
  /** What holds the upstream paused: the client's stream buffer ('drain') and the client's buffer budgets (credit). */
  private waits = 0;

  private readonly res: ResponseSink;

  constructor(
    private readonly exchange: Exchange,
    private readonly upstream: Upstream,
  ) {
    this.res = exchange.res;
    this.res.once('close', this.onClientClose);
  }

  private readonly onClientClose = (): void => {
    if (this.settled) return;
    this.clientGone = true;
    this.control?.abort();
  };

  /** One reason to pause is gone; the upstream is read again once none is left. */
  private readonly onWaitOver = (): void => {
    if (--this.waits === 0) this.control?.resume();
  };

  onInformational(status: number, headers: ResponseHeaders): void {
    relayInformational(this.exchange.req, this.exchange.res, status, headers);
  }

  onHead(status: number, headers: ResponseHeaders, ended = false): void {
    this.status = status;
    const { res } = this;
    const out = clientResponseHeaders(headers);
    if (out[STRICT_TRANSPORT_SECURITY] !== undefined && res.hasHeader(STRICT_TRANSPORT_SECURITY)) delete out[STRICT_TRANSPORT_SECURITY];
    if (status === 204 || status === 304) delete out['content-length'];
    if (out.trailer !== undefined && !canAnnounceTrailers(this.exchange.req, status, out)) delete out.trailer;
    if (ended) {
      // A head that ended the response goes out as a whole response: Node's HTTP/2 server then puts
      // END_STREAM on the HEADERS frame (writeHead would send HEADERS, then an empty DATA frame to end
      // the stream), which a gRPC trailers-only response (an error status) needs to be read as one.
      res.statusCode = status;
      for (const name of Object.keys(out)) res.setHeader(name, out[name]!);
      res.end();
      return;
    }
    // Head and the body bytes of the same read leave in one write: one TLS record and one syscall for a
    // small response instead of one per piece.
    res.cork?.();
    process.nextTick(uncork, res);
    res.writeHead(status, out);
  }

  onData(chunk: Buffer): boolean {
    this.bytes += chunk.length;
    const { account } = this.exchange;
    // Reading stops only once CLIENT_BUFFER_BYTES wait for the client, not at its stream's 16 KiB
    // mark: each stop and restart costs two system calls, and a 64 KiB response would pay them.
    if (!(account === undefined ? this.res.write(chunk) : account.write(this.res, chunk)) && this.res.writableLength >= CLIENT_BUFFER_BYTES) {
      this.waits++;
      this.res.once('drain', this.onWaitOver);
    }
    if (account !== undefined && !account.topUp()) {
      this.waits++;
      account.wait(this.onWaitOver);
    }
    return this.waits === 0;
  }

  onEnd(trailers?: ResponseHeaders): void {
    const relayed = responseTrailers(trailers);
    if (relayed !== undefined) this.res.addTrailers(relayed);
    this.res.end();
    this.upstream.reportSuccess();
    this.settle({ status: this.status, bytes: this.bytes, upstream: this.upstream.origin });
  }

  onError(error: ProximationError): void {
    const { code } = error;
    if (NOT_SENT.has(code)) this.upstream.reportConnectFailure(Date.now());
    const origin = this.upstream.origin;
    // A cut by the proxy may reach the upstream side first (the request body's end, the drain's close of the pools).
    const cut = cutOf(this.exchange.req);
    if (this.clientGone || cut !== undefined) {
      // Node's HTTP/1.1 server answers its request timeout with 408 when no response has begun.
      const status = cut === 'body' && !this.res.headersSent && !(this.exchange.req instanceof Http2ServerRequest) ? 408 : 0;
      this.settle({ status, bytes: this.bytes, upstream: origin, error: new ClientGone(cut), timeout: cut });
      return;
    }
    const timeout = TIMEOUTS.get(code);
    if (this.res.headersSent) {
      // The client already has a status line: all we can do is make the truncation visible.
      this.res.destroy(error);
      this.settle({ status: 0, bytes: this.bytes, upstream: origin, error, timeout });
      return;
    }
    const { exchange } = this;
    if (!exchange.hasBody && NOT_SENT.has(code)) {
      exchange.tried.add(this.upstream);
      const other = exchange.next(exchange.tried);
      if (other !== undefined) {
        this.settle(undefined);
        begin(exchange, other);
        return;
      }
    }
    const status = timeout === undefined ? 502 : 504;
    const bytes = sendError(this.res, status, status === 504 ? MESSAGES[504](origin) : MESSAGES[502](origin));
    this.settle({ status, bytes, upstream: origin, error, timeout });
  }

  /** Ends this attempt; `undefined` when another attempt takes the exchange over. */
  private settle(result: ForwardResult | undefined): void {
    if (this.settled) return;
    this.settled = true;
    this.res.off('close', this.onClientClose);
    if (result === undefined) return;
    this.exchange.account?.done();
    this.exchange.onDone(result);
  }
}

interface Exchange {
  req: ProxyRequest;
  res: ProxyResponse;
  path: string;
  headers: string[];
  hasBody: boolean;
  tried: Set<Upstream>;
  next: (tried: ReadonlySet<Upstream>) => Upstream | undefined;
  onDone: (result: ForwardResult) => void;
  /** The client's buffer budgets (client-buffers.ts); undefined: only the per-exchange bound. */
  account: BufferAccount | undefined;
}

function dispatch(exchange: Exchange, upstream: Upstream): void {
  const { req } = exchange;
  const handler = new ForwardHandler(exchange, upstream);
  handler.control = upstream.pool.request(
    {
      method: req.method!,
      path: exchange.path,
      headers: exchange.headers,
      body: exchange.hasBody ? req : null,
      bodyCut: streamReset,
      trailers: () => requestTrailers(req),
    },
    handler,
  );
}

/** An HTTP/2 request whose stream the client reset before its end; an HTTP/1.1 request stream never ends when cut. */
function streamReset(body: Readable): boolean {
  return body instanceof Http2ServerRequest && body.stream.aborted;
}

function uncork(res: ResponseSink): void {
  res.uncork?.();
}

/**
 * @param path the request target as the upstream gets it, origin-form (see request-target.ts)
 * @param headers the upstream request headers, already rewritten (see forwarded-headers.ts)
 * @param hasBody whether the request carries a body to stream upstream
 * @param next another upstream to try after a failure to connect, none of `tried`; undefined: give up
 */
export function forward(
  req: ProxyRequest,
  res: ProxyResponse,
  upstream: Upstream,
  path: string,
  headers: string[],
  hasBody: boolean,
  next: (tried: ReadonlySet<Upstream>) => Upstream | undefined,
  onDone: (result: ForwardResult) => void,
  buffers?: ClientBuffers,
): void {
  begin({ req, res, path, headers, hasBody, tried: new Set(), next, onDone, account: buffers?.open(req, res) }, upstream);
}

/** Dispatches the exchange to `upstream` once it holds the credit a read of that upstream needs. */
function begin(exchange: Exchange, upstream: Upstream): void {
  const { account, res } = exchange;
  if (account !== undefined) account.readSize = upstream.pool.maxReadBytes;
  if (account === undefined || account.topUp()) {
    dispatch(exchange, upstream);
    return;
  }
  // The client's buffers are full: the request goes upstream once it has credit for a response.
  const gone = (): void => {
    const cut = cutOf(exchange.req);
    exchange.onDone({ status: 0, bytes: 0, upstream: upstream.origin, error: new ClientGone(cut), timeout: cut });
  };
  res.once('close', gone);
  account.wait(() => {
    res.off('close', gone);
    dispatch(exchange, upstream);
  });
}

/** Whether the client sends a body: a length or chunked framing on HTTP/1.1, an open stream on HTTP/2. */
export function requestHasBody(req: ProxyRequest): boolean {
  if ('stream' in req) return !req.stream.endAfterHeaders;
  const length = req.headers['content-length'];
  return (length !== undefined && length !== '0') || req.headers['transfer-encoding'] !== undefined;
}
