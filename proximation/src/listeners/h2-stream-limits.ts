/**
 * The limits HTTP/1.1 gets from Node's HTTP parser and server, applied to each HTTP/2 stream.
 *
 * - Header list size: HPACK lets a few wire bytes stand for a large head (one 4 KB table entry
 *   referenced 37 times is about 40 bytes on the wire and 150 KB decoded). Node advertises
 *   SETTINGS_MAX_HEADER_LIST_SIZE and resets a stream over it (ENHANCE_YOUR_CALM) while decoding, but
 *   only once the client has acknowledged that setting: the streams of a client's first flight are
 *   decoded without any limit (measured on Node 20.20 and 26.10). So the decoded list is measured here
 *   as RFC 9113 6.5.2 defines it (each field's name and value octets plus 32), and a stream over
 *   `maxHeaderListSize` is answered 431 before it is routed: nothing of it reaches an upstream.
 * - Request time: HTTP/1.1's requestTimeout bounds a request from its start to the end of its body; on
 *   HTTP/2 a stream that has not delivered its whole body `requestTimeoutMs` after its headers is reset
 *   (RST_STREAM CANCEL), which ends the upstream request too (forward.ts aborts it when the client goes);
 *   the stream is marked `body` for the access log (client-cuts.ts).
 *
 * - Reset streams (rapid reset, CVE-2023-44487): Node hands a stream over as soon as its HEADERS are
 *   decoded, before it reads the RST_STREAM that may follow in the same packet. `forward` hands an
 *   HTTP/2 stream on only after the frames already received have been read (one setImmediate), and not
 *   at all once the client has reset it: a reset stream then never costs an upstream connection.
 *
 * `admit` returns false when it answered the request itself; HTTP/1.1 requests always pass. Each limit
 * that acts is counted (LimitObserver). Nothing here throws.
 */
import http2 from 'node:http2';
import type { LimitObserver } from '../metrics.js';
import { markCut } from '../proxy/client-cuts.js';
import { sendError } from '../proxy/error-responses.js';
import type { ProxyRequest, ProxyResponse } from '../proxy/types.js';

export interface H2StreamLimitsOptions {
  maxHeaderListSize: number;
  requestTimeoutMs: number;
  observer: LimitObserver;
}

/** RFC 9113 6.5.2: the size of a header list counts 32 octets of overhead per field. */
const FIELD_OVERHEAD = 32;

/** Size of a decoded header list as SETTINGS_MAX_HEADER_LIST_SIZE counts it; Node's header strings hold one octet per character. */
export function headerListSize(rawHeaders: readonly string[]): number {
  let size = 0;
  for (let i = 0; i < rawHeaders.length; i++) size += rawHeaders[i]!.length;
  return size + (rawHeaders.length / 2) * FIELD_OVERHEAD;
}

export class H2StreamLimits {
  constructor(private readonly options: H2StreamLimitsOptions) {}

  admit(req: ProxyRequest, res: ProxyResponse): boolean {
    if (!(req instanceof http2.Http2ServerRequest)) return true;
    if (!this.admitHeaders(req, res)) return false;
    const { stream } = req;
    if (!stream.endAfterHeaders) this.bound(stream, req);
    return true;
  }

  /**
   * The header list limit alone, for an extended CONNECT (RFC 8441): its stream is a WebSocket's life,
   * which the request deadline must not cut.
   */
  admitHeaders(req: http2.Http2ServerRequest, res: ProxyResponse): boolean {
    if (headerListSize(req.rawHeaders) <= this.options.maxHeaderListSize) return true;
    this.options.observer.limitHit('header_list_size');
    sendError(res, 431, `the request's header list is larger than ${this.options.maxHeaderListSize} bytes.`);
    return false;
  }

  /** Calls `next` for the request: at once on HTTP/1.1, on HTTP/2 once the frames read with it are processed, unless it was reset meanwhile. */
  forward(req: ProxyRequest, res: ProxyResponse, next: (req: ProxyRequest, res: ProxyResponse) => void): void {
    if (!(req instanceof http2.Http2ServerRequest)) next(req, res);
    else setImmediate(forwardUnlessReset, req, res, next);
  }

  private bound(stream: http2.ServerHttp2Stream, req: http2.Http2ServerRequest): void {
    const timer = setTimeout(() => {
      if (req.complete || stream.closed) return;
      this.options.observer.limitHit('h2_request_timeout');
      markCut(stream, 'body');
      stream.close(http2.constants.NGHTTP2_CANCEL);
    }, this.options.requestTimeoutMs);
    const done = (): void => clearTimeout(timer);
    req.once('end', done);
    stream.once('close', done);
  }
}

function forwardUnlessReset(req: http2.Http2ServerRequest, res: ProxyResponse, next: (req: ProxyRequest, res: ProxyResponse) => void): void {
  if (!req.stream.destroyed) next(req, res);
}
