/**
 * The keep-alive connections to one upstream origin (http: or https:), for the forwarding path and the
 * health checks. A request takes the connection that was idle for the shortest time (it is the least
 * likely to have been closed by the upstream), else opens a new one: there is no queue and no limit, as
 * with nginx's `keepalive`: the client side bounds the connections (config: max connections).
 *
 * A request that fails on a reused connection before any byte of the response came back, and that can
 * safely be sent twice (no body; GET, HEAD, OPTIONS, TRACE, PUT or DELETE), is sent once more on a new
 * connection: the upstream closed the idle connection as the request went out (the keep-alive race that
 * RFC 9112 9.3.1 describes). Everything else fails to the handler (see upstream-connection.ts).
 *
 * `close()` stops new requests, closes idle connections now and busy ones when their exchange ends, and
 * resolves when none is left; `destroy()` drops every connection at once, failing what is in flight.
 * A request on a closed pool fails with ERR_UPSTREAM_CLOSED, one holding CR, LF or NUL with
 * ERR_UPSTREAM_REQUEST (see `unsendable`), in both cases before anything is sent. `request` never throws.
 */
import { ProximationError } from '@proximation/shared';
import {
  ExchangeControl,
  unsendable,
  UpstreamConnection,
  UPSTREAM_READ_BYTES,
  type ConnectionOwner,
  type ConnectionOptions,
  type ExchangeHandler,
  type UpstreamRequest,
} from './upstream-connection.js';

export class UpstreamPool implements ConnectionOwner {
  /** The most response body one `onData` brings: one socket read. */
  readonly maxReadBytes = UPSTREAM_READ_BYTES;
  private readonly url: URL;
  private readonly connections = new Set<UpstreamConnection>();
  /** Most recently released last. */
  private readonly idle: UpstreamConnection[] = [];
  private closing = false;
  private readonly waitingForEmpty: (() => void)[] = [];

  constructor(
    readonly origin: string,
    private readonly options: ConnectionOptions,
  ) {
    this.url = new URL(origin);
  }

  request(request: UpstreamRequest, handler: ExchangeHandler): ExchangeControl {
    const control = new ExchangeControl();
    const refused = this.closing ? new ProximationError('ERR_UPSTREAM_CLOSED', `the connection pool of ${this.origin} is closed`) : unsendable(request);
    if (refused !== undefined) {
      handler.onError(refused);
      return control;
    }
    this.checkout().send(request, handler, control);
    return control;
  }

  private checkout(): UpstreamConnection {
    const now = Date.now();
    for (let connection = this.idle.pop(); connection !== undefined; connection = this.idle.pop()) {
      if (connection.idleUntil > now) return connection;
      connection.close();
    }
    return this.open();
  }

  /** Idle connections (the tests watch reuse with it). */
  get idleCount(): number {
    return this.idle.length;
  }

  release(connection: UpstreamConnection): void {
    if (this.closing) connection.close();
    else this.idle.push(connection);
  }

  discard(connection: UpstreamConnection): void {
    this.connections.delete(connection);
    const at = this.idle.lastIndexOf(connection);
    if (at !== -1) this.idle.splice(at, 1);
    if (this.connections.size === 0) for (const resolve of this.waitingForEmpty.splice(0)) resolve();
  }

  retry(request: UpstreamRequest, handler: ExchangeHandler, control: ExchangeControl): boolean {
    if (this.closing) return false;
    this.open().send(request, handler, control);
    return true;
  }

  close(): Promise<void> {
    this.closing = true;
    for (const connection of this.idle.splice(0)) connection.close();
    return this.whenEmpty();
  }

  destroy(): Promise<void> {
    this.closing = true;
    for (const connection of [...this.connections]) connection.close();
    return this.whenEmpty();
  }

  private whenEmpty(): Promise<void> {
    if (this.connections.size === 0) return Promise.resolve();
    return new Promise((resolve) => this.waitingForEmpty.push(resolve));
  }

  private open(): UpstreamConnection {
    const connection = UpstreamConnection.open(this.url, this, this.options);
    this.connections.add(connection);
    return connection;
  }
}
