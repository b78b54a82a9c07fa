/**
 * How the admin API speaks HTTP: JSON answers that are never cached, errors as
 * `{"error": {"code", "message"}}` (see admin-api.ts in @proximation/shared) with the status that fits
 * each ProximationError code, and JSON request bodies read once with a size limit.
 *
 * Status by code: a malformed or invalid request 400; an unknown site or version 404; a change that
 * conflicts with the table as it is (exists already, active, superseded, upstreams changing) 409;
 * If-Match not matching 412; a body too large 413; not JSON 415; a failed health check 422 (the
 * request is well-formed and fits the table, but its upstreams are not ready, so retrying later may
 * succeed: not a conflict with the table); the table's lock not obtained 503; anything else 500.
 *
 * `readJsonBody` throws ProximationError ERR_UNSUPPORTED_MEDIA_TYPE, ERR_BODY_TOO_LARGE (as soon as
 * Content-Length or the bytes received exceed the limit) or ERR_INVALID_REQUEST (malformed JSON, with
 * line and column).
 */
import type http from 'node:http';
import { ProximationError, errorBody, parseJsonText } from '@proximation/shared';

const STATUS_BY_CODE: Partial<Record<string, number>> = {
  ERR_INVALID_REQUEST: 400,
  ERR_INVALID_ARGUMENT: 400,
  ERR_INVALID_SITE_NAME: 400,
  ERR_INVALID_VERSION_NAME: 400,
  ERR_INVALID_TAG_PREFIX: 400,
  ERR_INVALID_HOSTNAME: 400,
  ERR_INVALID_UPSTREAM: 400,
  ERR_RESTRICTED_UPSTREAM: 400,
  ERR_NO_HOSTS: 400,
  ERR_INVALID_HSTS: 400,
  ERR_WILDCARD_NEEDS_DNS01: 400,
  ERR_INVALID_LEASE: 400,
  ERR_UNAUTHORIZED: 401,
  ERR_ADMIN_API_DISABLED: 403,
  ERR_NOT_FOUND: 404,
  ERR_UNKNOWN_SITE: 404,
  ERR_UNKNOWN_VERSION: 404,
  ERR_METHOD_NOT_ALLOWED: 405,
  ERR_SITE_EXISTS: 409,
  ERR_HOST_TAKEN: 409,
  ERR_TAG_PREFIX_TAKEN: 409,
  ERR_VERSION_EXISTS: 409,
  ERR_VERSION_ACTIVE: 409,
  ERR_NO_ROLLBACK: 409,
  ERR_SUPERSEDED: 409,
  ERR_UNCHECKED_UPSTREAMS: 409,
  ERR_UPSTREAMS_CHANGING: 409,
  ERR_MEMBER_IDENTITY: 409,
  ERR_PRECONDITION_FAILED: 412,
  ERR_BODY_TOO_LARGE: 413,
  ERR_UNSUPPORTED_MEDIA_TYPE: 415,
  ERR_HEALTH_CHECK_FAILED: 422,
  ERR_LOCK_TIMEOUT: 503,
  ERR_LOCK_LOST: 503,
};

function statusFor(err: ProximationError): number {
  return STATUS_BY_CODE[err.code] ?? 500;
}

export function sendJson(res: http.ServerResponse, status: number, body: unknown, headers: http.OutgoingHttpHeaders = {}): void {
  const text = JSON.stringify(body);
  res.writeHead(status, {
    ...headers,
    'content-type': 'application/json; charset=utf-8',
    'content-length': Buffer.byteLength(text),
    'cache-control': 'no-store',
  });
  res.end(text);
}

export function sendError(res: http.ServerResponse, err: ProximationError, headers: http.OutgoingHttpHeaders = {}): void {
  const status = statusFor(err);
  // A request body left unread (413, 415, early refusals) must not be taken for the next request.
  sendJson(res, status, errorBody(err), status === 413 || status === 415 ? { ...headers, connection: 'close' } : headers);
}

export async function readJsonBody(req: http.IncomingMessage, limit: number, source: string): Promise<unknown> {
  const type = req.headers['content-type'] ?? '';
  if (!/^application\/json\s*(;|$)/i.test(type)) {
    throw new ProximationError(
      'ERR_UNSUPPORTED_MEDIA_TYPE',
      `${source}: send the body as JSON with Content-Type: application/json (this request had ${type === '' ? 'no Content-Type' : `Content-Type: ${type}`}).`,
    );
  }
  const tooLarge = () => new ProximationError('ERR_BODY_TOO_LARGE', `${source}: the body is larger than ${limit} bytes, the most a change request may be.`);
  if (Number(req.headers['content-length'] ?? 0) > limit) throw tooLarge();
  const text = await new Promise<string>((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const onData = (chunk: Buffer): void => {
      size += chunk.length;
      if (size <= limit) {
        chunks.push(chunk);
        return;
      }
      // Discard the rest instead of destroying the request, whose socket the answer still needs.
      req.off('data', onData);
      req.resume();
      reject(tooLarge());
    };
    req.on('data', onData);
    req.once('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.once('error', reject);
  });
  return parseJsonText(text, source, 'ERR_INVALID_REQUEST');
}
