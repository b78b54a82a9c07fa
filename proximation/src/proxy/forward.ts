/**
 * Forwards one request to one upstream through its undici pool and streams the response back.
 *
 * Both bodies stream with back-pressure: undici reads the request body as the upstream accepts it, and a
 * response chunk that the client cannot take yet pauses the upstream read until the client drains, so a
 * 1 GB body in either direction holds only socket buffers. A client that goes away aborts the upstream
 * request. Failures map as nginx maps them: cannot connect → 502, connect or response timeout → 504; a
 * failure after the response headers were sent can only cut the client's response short.
 *
 * A request that could not reach its upstream (connection refused, unreachable, connect timeout) is
 * tried once on each other upstream of the version, but only when it has no body: a body stream that
 * undici may have started reading cannot be sent again.
 *
 * The upstream's Strict-Transport-Security header is dropped when the response already has one (the
 * site's own HSTS setting, put there by the proxy handler): the site's setting in the routing table is
 * what the operator decided for the host, and a response must carry one policy, not two (RFC 6797
 * 8.1: browsers heed only the first). Sites without HSTS pass the upstream's header through.
 *
 * `onDone` is called exactly once, with what the access log and the passive health check need.
 */
import type { Dispatcher } from 'undici';
import { clientResponseHeaders } from './forwarded-headers.js';
import { MESSAGES, sendError } from './error-responses.js';
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
}

export const STRICT_TRANSPORT_SECURITY = 'strict-transport-security';

const CONNECT_FAILURES = new Set(['ECONNREFUSED', 'ECONNRESET', 'EHOSTUNREACH', 'ENETUNREACH', 'ENOTFOUND', 'EAI_AGAIN', 'UND_ERR_CONNECT_TIMEOUT']);
/** Failures that prove the request never reached the upstream (a reset may come after it did). */
const NOT_SENT = new Set(['ECONNREFUSED', 'EHOSTUNREACH', 'ENETUNREACH', 'ENOTFOUND', 'EAI_AGAIN', 'UND_ERR_CONNECT_TIMEOUT']);
const TIMEOUTS = new Set(['UND_ERR_CONNECT_TIMEOUT', 'UND_ERR_HEADERS_TIMEOUT', 'UND_ERR_BODY_TIMEOUT']);

class ClientGone extends Error {
  constructor() {
    super('the client closed the connection before the response was complete');
    this.name = 'ClientGone';
  }
}

class ForwardHandler implements Dispatcher.DispatchHandler {
  private controller: Dispatcher.DispatchController | undefined;
  private status = 0;
  private bytes = 0;
  private settled = false;
  private clientGone = false;
  private connected = false;

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
    this.controller?.abort(new ClientGone());
  };

  private readonly onDrain = (): void => {
    this.controller?.resume();
  };

  onRequestStart(controller: Dispatcher.DispatchController): void {
    this.controller = controller;
    if (this.clientGone) controller.abort(new ClientGone());
  }

  onResponseStart(_controller: Dispatcher.DispatchController, statusCode: number, headers: Record<string, string | string[] | undefined>): void {
    // 1xx interim responses are not relayed: Node answers 100-continue to the client itself.
    if (statusCode < 200) return;
    this.connected = true;
    this.status = statusCode;
    // Head and the body chunks that arrive in the same tick leave in one write, so one TLS record
    // and one syscall for a small response instead of one per piece.
    this.res.cork?.();
    process.nextTick(uncork, this.res);
    const out = clientResponseHeaders(headers);
    if (out[STRICT_TRANSPORT_SECURITY] !== undefined && this.res.hasHeader(STRICT_TRANSPORT_SECURITY)) delete out[STRICT_TRANSPORT_SECURITY];
    this.res.writeHead(statusCode, out);
  }

  onResponseData(controller: Dispatcher.DispatchController, chunk: Buffer): void {
    this.bytes += chunk.length;
    if (!this.res.write(chunk)) {
      controller.pause();
      this.res.once('drain', this.onDrain);
    }
  }

  onResponseEnd(): void {
    this.res.end();
    this.upstream.reportSuccess();
    this.settle({ status: this.status, bytes: this.bytes, upstream: this.upstream.origin });
  }

  onResponseError(_controller: Dispatcher.DispatchController, error: Error): void {
    const code = (error as { code?: string }).code ?? '';
    if (!this.connected && CONNECT_FAILURES.has(code)) this.upstream.reportConnectFailure(Date.now());
    const origin = this.upstream.origin;
    if (this.clientGone || error instanceof ClientGone) {
      this.settle({ status: 0, bytes: this.bytes, upstream: origin, error: new ClientGone() });
      return;
    }
    if (this.res.headersSent) {
      // The client already has a status line: all we can do is make the truncation visible.
      this.res.destroy(error);
      this.settle({ status: 0, bytes: this.bytes, upstream: origin, error });
      return;
    }
    const { exchange } = this;
    if (!exchange.hasBody && NOT_SENT.has(code)) {
      exchange.tried.add(this.upstream);
      const other = exchange.next(exchange.tried);
      if (other !== undefined) {
        this.settle(undefined);
        dispatch(exchange, other);
        return;
      }
    }
    const status = TIMEOUTS.has(code) ? 504 : 502;
    sendError(this.res, status, status === 504 ? MESSAGES[504](origin) : MESSAGES[502](origin));
    this.settle({ status, bytes: 0, upstream: origin, error });
  }

  /** Ends this attempt; `undefined` when another attempt takes the exchange over. */
  private settle(result: ForwardResult | undefined): void {
    if (this.settled) return;
    this.settled = true;
    this.res.off('close', this.onClientClose);
    if (result !== undefined) this.exchange.onDone(result);
  }
}

interface Exchange {
  req: ProxyRequest;
  res: ResponseSink;
  headers: string[];
  hasBody: boolean;
  tried: Set<Upstream>;
  next: (tried: ReadonlySet<Upstream>) => Upstream | undefined;
  onDone: (result: ForwardResult) => void;
}

function dispatch(exchange: Exchange, upstream: Upstream): void {
  const { req } = exchange;
  upstream.pool.dispatch(
    { path: req.url ?? '/', method: req.method as Dispatcher.HttpMethod, headers: exchange.headers, body: exchange.hasBody ? req : null },
    new ForwardHandler(exchange, upstream),
  );
}

function uncork(res: ResponseSink): void {
  res.uncork?.();
}

/**
 * @param headers the upstream request headers, already rewritten (see forwarded-headers.ts)
 * @param hasBody whether the request carries a body to stream upstream
 * @param next another upstream to try after a failure to connect, none of `tried`; undefined: give up
 */
export function forward(
  req: ProxyRequest,
  res: ProxyResponse,
  upstream: Upstream,
  headers: string[],
  hasBody: boolean,
  next: (tried: ReadonlySet<Upstream>) => Upstream | undefined,
  onDone: (result: ForwardResult) => void,
): void {
  dispatch({ req, res, headers, hasBody, tried: new Set(), next, onDone }, upstream);
}

/** Whether the client sends a body: a length or chunked framing on HTTP/1.1, an open stream on HTTP/2. */
export function requestHasBody(req: ProxyRequest): boolean {
  if ('stream' in req) return !req.stream.endAfterHeaders;
  const length = req.headers['content-length'];
  return (length !== undefined && length !== '0') || req.headers['transfer-encoding'] !== undefined;
}
