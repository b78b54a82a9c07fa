/**
 * Forwards one request to one upstream through its undici pool and streams the response back.
 *
 * Both bodies stream with back-pressure: undici reads the request body as the upstream accepts it, and a
 * response chunk that the client cannot take yet pauses the upstream read until the client drains, so a
 * 1 GB body in either direction holds only socket buffers. A client that goes away aborts the upstream
 * request. Failures map as nginx maps them: cannot connect → 502, connect or response timeout → 504; a
 * failure after the response headers were sent can only cut the client's response short.
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
  /** Response body bytes sent to the client. */
  bytes: number;
  /** Set when the exchange failed; the status then says how the client saw it (0: cut short or gone). */
  error?: Error;
}

const CONNECT_FAILURES = new Set(['ECONNREFUSED', 'ECONNRESET', 'EHOSTUNREACH', 'ENETUNREACH', 'ENOTFOUND', 'EAI_AGAIN', 'UND_ERR_CONNECT_TIMEOUT']);
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

  constructor(
    private readonly res: ResponseSink,
    private readonly upstream: Upstream,
    private readonly onDone: (result: ForwardResult) => void,
  ) {
    res.once('close', this.onClientClose);
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
    this.res.writeHead(statusCode, clientResponseHeaders(headers));
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
    this.settle({ status: this.status, bytes: this.bytes });
  }

  onResponseError(_controller: Dispatcher.DispatchController, error: Error): void {
    const code = (error as { code?: string }).code ?? '';
    if (!this.connected && CONNECT_FAILURES.has(code)) this.upstream.reportConnectFailure(Date.now());
    if (this.clientGone || error instanceof ClientGone) {
      this.settle({ status: 0, bytes: this.bytes, error: new ClientGone() });
      return;
    }
    if (this.res.headersSent) {
      // The client already has a status line: all we can do is make the truncation visible.
      this.res.destroy(error);
      this.settle({ status: 0, bytes: this.bytes, error });
      return;
    }
    const status = TIMEOUTS.has(code) ? 504 : 502;
    sendError(this.res, status, status === 504 ? MESSAGES[504](this.upstream.origin) : MESSAGES[502](this.upstream.origin));
    this.settle({ status, bytes: 0, error });
  }

  private settle(result: ForwardResult): void {
    if (this.settled) return;
    this.settled = true;
    this.res.off('close', this.onClientClose);
    this.onDone(result);
  }
}

function uncork(res: ResponseSink): void {
  res.uncork?.();
}

/**
 * @param headers the upstream request headers, already rewritten (see forwarded-headers.ts)
 * @param hasBody whether the request carries a body to stream upstream
 */
export function forward(
  req: ProxyRequest,
  res: ProxyResponse,
  upstream: Upstream,
  headers: string[],
  hasBody: boolean,
  onDone: (result: ForwardResult) => void,
): void {
  const handler = new ForwardHandler(res, upstream, onDone);
  upstream.pool.dispatch(
    {
      path: req.url ?? '/',
      method: req.method as Dispatcher.HttpMethod,
      headers,
      body: hasBody ? req : null,
    },
    handler,
  );
}

/** Whether the client sends a body: a length or chunked framing on HTTP/1.1, an open stream on HTTP/2. */
export function requestHasBody(req: ProxyRequest): boolean {
  if ('stream' in req) return !req.stream.endAfterHeaders;
  const length = req.headers['content-length'];
  return (length !== undefined && length !== '0') || req.headers['transfer-encoding'] !== undefined;
}
