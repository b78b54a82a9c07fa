/**
 * What crosses the proxy besides a message's head and body: trailer fields (both ways) and interim
 * (1xx) responses (upstream to client). Independent of how the upstream is reached, so an HTTP/1.1 and
 * an HTTP/2 upstream connection relay them alike: the connection hands them to its ExchangeHandler
 * (`onInformational`, `onEnd(trailers)`), forward.ts passes them on with the functions here.
 *
 * - Trailers: fields that would change how the message is framed or routed, or that are connection
 *   specific (hop-by-hop, which Node's HTTP/2 side refuses), are dropped; the rest pass as they came.
 *   Towards an HTTP/1.1 upstream they need the chunked framing, so a request that has a Content-Length
 *   (possible on HTTP/2) loses its trailers; towards an HTTP/1.1 client Node sends them only when it
 *   frames the response chunked (not to an HTTP/1.0 client, not after a Content-Length).
 * - `TE: trailers` is kept towards the upstream (gRPC servers require it), any other transfer coding
 *   the client accepts is not: the proxy decodes none.
 * - Interim responses: 103 Early Hints, 102 and other 1xx codes are relayed before the final response,
 *   except 100 Continue (Node's server has already answered the client's Expect, which the upstream
 *   never sees) and 101 (the parser refuses it outside an upgrade). Not to an HTTP/1.0 client (RFC 9110
 *   15.2), not once the final response has begun, and on HTTP/1.1 only while the response owns its
 *   socket (a pipelined response waiting its turn gets none: the bytes would land in the previous one).
 *
 * Nothing here throws on what an upstream sent: the parser validated it, and what Node could still
 * refuse is filtered first.
 */
import type { OutgoingHttpHeaders } from 'node:http';
import { STATUS_CODES } from 'node:http';
import { clientResponseHeaders, isHopByHop } from './forwarded-headers.js';
import type { ResponseHeaders } from './http1-response-parser.js';
import type { ProxyRequest, ProxyResponse } from './types.js';

/** Fields a trailer section must not carry across: framing, routing, and the announcement of trailers itself. */
const NOT_IN_TRAILERS = new Set(['content-length', 'host', 'trailer', 'content-type', 'content-encoding', 'content-range']);

function relayableTrailer(lower: string): boolean {
  return lower.charCodeAt(0) !== 58 /* ':' */ && !NOT_IN_TRAILERS.has(lower) && !isHopByHop(lower);
}

/** The client's request trailers as a flat [name, value, ...] list for the upstream; empty when none. */
export function requestTrailers(req: ProxyRequest): string[] {
  const raw = req.rawTrailers;
  const out: string[] = [];
  for (let i = 0; i < raw.length; i += 2) {
    if (relayableTrailer(raw[i]!.toLowerCase())) out.push(raw[i]!, raw[i + 1]!);
  }
  return out;
}

/** The upstream's response trailers ready for `res.addTrailers`, or undefined when none are left. */
export function responseTrailers(trailers: ResponseHeaders | undefined): OutgoingHttpHeaders | undefined {
  if (trailers === undefined) return undefined;
  let out: OutgoingHttpHeaders | undefined;
  for (const name in trailers) {
    if (relayableTrailer(name)) (out ??= {})[name] = trailers[name];
  }
  return out;
}

/**
 * Whether the response to `req` can carry the upstream's `Trailer` field: Node's HTTP/1.1 server throws
 * on it unless it frames the response chunked (an HTTP/1.1 client, a body, no Content-Length).
 */
export function canAnnounceTrailers(req: ProxyRequest, status: number, headers: OutgoingHttpHeaders): boolean {
  if (req.httpVersionMajor !== 1) return true;
  return req.httpVersionMinor === 1 && req.method !== 'HEAD' && status !== 204 && status !== 304 && headers['content-length'] === undefined;
}

/** Relays one interim response from the upstream to the client (see the module header for when it does not). */
export function relayInformational(req: ProxyRequest, res: ProxyResponse, status: number, headers: ResponseHeaders): void {
  if (status === 100 || status === 101 || res.headersSent) return;
  const fields = clientResponseHeaders(headers);
  if ('stream' in res) {
    if (!res.stream.destroyed) res.stream.additionalHeaders({ ...fields, ':status': status });
    return;
  }
  const socket = res.socket;
  if (req.httpVersionMinor === 0 || socket === null || socket.destroyed) return;
  let head = `HTTP/1.1 ${status} ${STATUS_CODES[status] ?? 'Informational'}\r\n`;
  for (const name in fields) {
    const value = fields[name]!;
    for (const one of Array.isArray(value) ? value : [value]) head += `${name}: ${one}\r\n`;
  }
  socket.write(`${head}\r\n`, 'latin1');
}
