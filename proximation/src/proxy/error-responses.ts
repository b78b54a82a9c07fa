/**
 * The proxy's own answers, when it cannot or must not forward: short plain-text bodies that say what
 * happened and, where it helps, what to do. Works for HTTP/1.1 and HTTP/2 responses alike.
 */
import { STATUS_CODES } from 'node:http';
import type { Duplex } from 'node:stream';
import type { ResponseSink } from './types.js';

export const MESSAGES = {
  403: (host: string) => `Host "${host}" is a preview host that admits only listed client networks or the admin token (header Proximation-Preview-Token).`,
  404: (host: string) => `No site is configured for host "${host}" on this proxy. Add it with: deploy site add <site> --host ${host}`,
  421: (host: string, servername: string | undefined) =>
    servername === undefined
      ? `This connection did not name a host in its TLS handshake (SNI), so it cannot serve host "${host}". Connect again with SNI ${host}.`
      : `This connection's certificate, served for "${servername}", does not cover host "${host}". Connect again with SNI ${host}.`,
  502: (upstream: string) => `The upstream ${upstream} could not be reached or closed the connection.`,
  503: (site: string) => `Site "${site}" has no active version yet. Register one with: deploy register --site ${site} ...`,
  504: (upstream: string) => `The upstream ${upstream} did not answer in time.`,
} as const;

function body(message: string): string {
  return `proximation: ${message}\n`;
}

/**
 * Ends `res` with a proxy-generated status and message, unless its headers are already out. Returns the
 * body bytes sent (0 when nothing was), for the access log.
 */
export function sendError(res: ResponseSink, status: number, message: string): number {
  if (res.headersSent) return 0;
  const text = body(message);
  res.writeHead(status, {
    'content-type': 'text/plain; charset=utf-8',
    'content-length': Buffer.byteLength(text),
    'cache-control': 'no-store',
  });
  res.end(text);
  return Buffer.byteLength(text);
}

/**
 * The same answer on a raw socket (an upgrade or CONNECT request that will not be tunnelled), then closes
 * it; the body bytes. `headers` go out as given: names and values of the proxy's own, never a client's.
 */
export function sendErrorToSocket(socket: Duplex, status: number, message: string, headers: Readonly<Record<string, string>> = {}): number {
  const text = body(message);
  let extra = '';
  for (const [name, value] of Object.entries(headers)) extra += `${name}: ${value}\r\n`;
  socket.end(
    `HTTP/1.1 ${status} ${STATUS_CODES[status] ?? ''}\r\n${extra}content-type: text/plain; charset=utf-8\r\n` +
      `content-length: ${Buffer.byteLength(text)}\r\ncache-control: no-store\r\nconnection: close\r\n\r\n${text}`,
  );
  return Buffer.byteLength(text);
}

/** Methods a reverse proxy forwards: the Allow header of its 405 to CONNECT. */
export const ALLOWED_METHODS = 'GET, HEAD, POST, PUT, DELETE, PATCH, OPTIONS';
export const CONNECT_REFUSAL = 'CONNECT is not supported: this is a reverse proxy, not a forward proxy.';
