/**
 * A listener's open client connections (HTTP/1.1 sockets or HTTP/2 sessions), each with the exchanges
 * it has in progress, and what Node's idle timer means for them (the README's Timeouts table).
 *
 * Node runs an idle timer (`server.setTimeout`) on each HTTP/1.1 socket and HTTP/2 session and, when it
 * runs out, destroys the connection unless the server has a 'timeout' listener. `onTimeout`, installed
 * as that listener, closes it only when it is the client's turn: no exchange in progress (keep-alive
 * between requests), or one that waits on the client (`waitsOnClient`). A connection whose exchanges
 * wait on the upstream stays open: the upstream timeout bounds those, and the next bytes that move
 * re-arm Node's timer.
 *
 * `cut` destroys a connection after marking it, and its HTTP/2 streams, with why (client-cuts.ts), so
 * the access log names the timeout or the drain. A connection leaves the set when it closes; `track`
 * and `cut` of one that is not in it do nothing. Nothing here throws.
 */
import type http2 from 'node:http2';
import { Http2ServerRequest } from 'node:http2';
import type { Socket } from 'node:net';
import { markCut, type ClientCut } from '../proxy/client-cuts.js';
import type { ProxyRequest, ProxyResponse } from '../proxy/types.js';

type Connection = Socket | http2.ServerHttp2Session;

/** A request in progress on a client connection; `tunnel`: an HTTP/2 CONNECT stream (a WebSocket). */
export interface Exchange {
  req: ProxyRequest;
  res: ProxyResponse;
  tunnel: boolean;
}

/**
 * Whether an exchange waits on the client: bytes of its response wait for the client to read them, or
 * its request body is being read (not held back for the upstream, not queued behind a limit) and has
 * not ended. A WebSocket's stream is open both ways for its whole life, so only the first counts for it.
 */
function waitsOnClient({ req, res, tunnel }: Exchange): boolean {
  return res.writableLength > 0 || (!tunnel && !req.complete && req.readableFlowing === true);
}

export class ClientConnections<C extends Connection> {
  private readonly open = new Map<C, Set<Exchange>>();

  /** Starts tracking `connection` until it closes. */
  add(connection: C): void {
    this.open.set(connection, new Set());
    connection.once('close', () => this.open.delete(connection));
  }

  /** Stops tracking `connection` (it became a WebSocket tunnel, which bounds itself). */
  delete(connection: C): void {
    this.open.delete(connection);
  }

  has(connection: object): connection is C {
    return this.open.has(connection as C);
  }

  get size(): number {
    return this.open.size;
  }

  connections(): IterableIterator<C> {
    return this.open.keys();
  }

  /** Whether `connection` has no exchange in progress. */
  idle(connection: C): boolean {
    return this.open.get(connection)?.size === 0;
  }

  /** Counts `exchange` on `connection` until its response closes; `onDone` runs then. */
  track(connection: C, exchange: Exchange, onDone?: () => void): void {
    const exchanges = this.open.get(connection);
    if (exchanges === undefined) return;
    exchanges.add(exchange);
    exchange.res.once('close', () => {
      exchanges.delete(exchange);
      onDone?.();
    });
  }

  /** The server's 'timeout' listener for these connections (see the module header). */
  readonly onTimeout = (connection: C): void => {
    const exchanges = this.open.get(connection);
    if (exchanges !== undefined && exchanges.size > 0 && ![...exchanges].some(waitsOnClient)) return;
    this.cut(connection, 'idle');
  };

  /** Destroys a connection, marked (with its HTTP/2 streams) with why, for the access log. */
  cut(connection: C, why: ClientCut): void {
    markCut(connection, why);
    for (const { req } of this.open.get(connection) ?? []) if (req instanceof Http2ServerRequest) markCut(req.stream, why);
    connection.destroy();
  }
}
