/**
 * What a request asks for, checked once before it is routed: the authority it is routed by and the
 * target the upstream gets, or the refusal the client gets instead. Node's servers parse the request;
 * this only judges what they hand over.
 *
 * - The authority (RFC 9112 3.2, RFC 9113 8.3.1): HTTP/1.1's one `Host` line, or HTTP/2's `:authority`
 *   (a `host` field only when `:authority` is absent). More than one Host line, none at all, an HTTP/2
 *   `host` naming another authority than `:authority` (compared as hosts: case, trailing dot and the
 *   default port 443 do not count), or an authority that is not `host[:port]` → 400. Nothing of a
 *   refused request reaches an upstream.
 * - Absolute-form targets (`GET https://other.test/b HTTP/1.1`, RFC 9112 3.2.2): the target's authority
 *   wins over Host, and the upstream gets the origin-form (`/b`, the query kept, path bytes untouched;
 *   an empty path is `/`, and `*` for OPTIONS, RFC 9112 3.2.1 and 3.2.4). Schemes other than http and
 *   https, and userinfo (`https://user@host/`, RFC 9110 4.2.4) → 400. HTTP/2 carries no absolute-form
 *   (`:path` is origin-form or `*`, RFC 9113 8.3.1): Node resets a stream with any other `:path`
 *   (PROTOCOL_ERROR) before it is handed over.
 * - Transfer codings (RFC 9112 6.1, 6.3, 7): Node frames `chunked`, but hands over `gzip, chunked`
 *   de-chunked with the gzip coding silently gone, which the upstream would take for the content: any
 *   coding besides `chunked` → 501, as RFC 9112 6.1 allows. A list that does not end in chunked leaves
 *   the content without a length: 400 (RFC 9112 6.3), answered before Node's parser fails on the
 *   content and closes the connection.
 * - An HTTP/1.1 upgrade (a WebSocket's opening handshake) that announces content (Content-Length other
 *   than 0, or Transfer-Encoding) → 400: RFC 6455 4.1's handshake is a GET without content, and Node
 *   hands such a request over as an upgrade whose content would be taken for the first frames, while
 *   the upstream waited for content that never comes.
 *
 * Nothing here throws; the returned authority is the client's text (port and case as sent), the one
 * the router, the 421 check and the upstream's Host all use.
 */
import type { ProxyRequest } from './types.js';

export interface RequestTarget {
  /** `host[:port]` as the client wrote it, in the target or Host (HTTP/1.1) or `:authority` (HTTP/2). */
  authority: string;
  /** Origin-form (or `*`), as the upstream's request line gets it. */
  path: string;
}

export interface Refusal {
  status: 400 | 501;
  message: string;
}

/** RFC 3986 3.2.2 host (an IP literal or a reg-name, percent-encoding allowed), then an optional port. */
const AUTHORITY = /^(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9\-._~!$&'()*+,;=%]+)(?::[0-9]*)?$/;

/** `scheme://authority` and the rest (path and query, none at all, never a fragment) of an absolute-form target. */
const ABSOLUTE_FORM = /^([A-Za-z][A-Za-z0-9+.-]*):\/\/([^/?#]*)([/?].*)?$/s;

function refuse(status: Refusal['status'], message: string): Refusal {
  return { status, message };
}

export function isRefusal(target: RequestTarget | Refusal): target is Refusal {
  return 'status' in target;
}

/** @param upgrade an HTTP/1.1 upgrade request (a WebSocket's opening handshake) */
export function requestTarget(req: ProxyRequest, upgrade = false): RequestTarget | Refusal {
  const http2 = req.httpVersionMajor === 2;
  const hosts = hostLines(req.rawHeaders);
  if (hosts.length > 1) return refuse(400, 'the request has more than one Host header (RFC 9112 3.2); send exactly one.');
  const url = req.url ?? '';
  let authority: string | undefined;
  let path = url;
  if (http2) {
    authority = req.headers[':authority'] as string | undefined;
    if (authority !== undefined && hosts.length === 1 && !sameAuthority(authority, hosts[0]!)) {
      return refuse(400, `the host header "${hosts[0]}" names another authority than :authority "${authority}" (RFC 9113 8.3.1).`);
    }
    authority ??= hosts[0];
  } else {
    authority = hosts[0];
    if (authority === undefined) return refuse(400, 'the request has no Host header (RFC 9112 3.2); this proxy routes by it.');
    const coding = req.headers['transfer-encoding'];
    if (upgrade && (coding !== undefined || (req.headers['content-length'] ?? '0') !== '0')) {
      return refuse(400, 'a WebSocket opening handshake carries no content (RFC 6455 4.1); send it without Content-Length or Transfer-Encoding.');
    }
    if (coding !== undefined) {
      const codings = coding.toLowerCase().split(',');
      if (codings.at(-1)!.trim() !== 'chunked') return refuse(400, `the transfer coding "${coding}" does not end in chunked, so the content has no length (RFC 9112 6.3).`);
      if (codings.length > 1) return refuse(501, `the transfer coding "${coding}" is not supported: only chunked is (RFC 9112 6.1); send the content with a Content-Encoding instead.`);
    }
    if (!url.startsWith('/') && url !== '*') {
      const absolute = ABSOLUTE_FORM.exec(url);
      if (absolute === null) return refuse(400, `the request target "${url}" is neither a path nor an absolute URI (RFC 9112 3.2).`);
      const [, scheme = '', targetAuthority = '', rest] = absolute;
      const lowerScheme = scheme.toLowerCase();
      if (lowerScheme !== 'https' && lowerScheme !== 'http') return refuse(400, `the request target "${url}" is not an http or https URI.`);
      if (targetAuthority.includes('@')) return refuse(400, `the request target "${url}" carries userinfo, which HTTP does not allow (RFC 9110 4.2.4).`);
      authority = targetAuthority;
      if (rest === undefined) path = req.method === 'OPTIONS' ? '*' : '/';
      else path = rest.startsWith('?') ? `/${rest}` : rest;
    }
  }
  if (authority === undefined) return refuse(400, 'the request has neither :authority nor host (RFC 9113 8.3.1); this proxy routes by them.');
  if (!AUTHORITY.test(authority)) return refuse(400, `the authority "${authority}" is not a host with an optional port (RFC 9110 7.2).`);
  return { authority, path };
}

/** Every Host field value of a raw header list (HTTP/2's `host` included, its `:authority` not). */
function hostLines(rawHeaders: readonly string[]): string[] {
  const out: string[] = [];
  for (let i = 0; i < rawHeaders.length; i += 2) {
    const name = rawHeaders[i]!;
    if (name.length === 4 && name.toLowerCase() === 'host') out.push(rawHeaders[i + 1]!);
  }
  return out;
}

/** Whether two https authorities name the same origin: host case, a trailing dot and port 443 do not count. */
function sameAuthority(a: string, b: string): boolean {
  return normalize(a) === normalize(b);
}

function normalize(authority: string): string {
  let out = authority.toLowerCase();
  if (out.endsWith(':443')) out = out.slice(0, -4);
  else if (out.endsWith(':')) out = out.slice(0, -1);
  return out.endsWith('.') ? out.slice(0, -1) : out;
}
