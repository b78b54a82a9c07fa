/**
 * Limits per client, so that one client cannot take what all the others share: the listeners'
 * connection budget, the request rate, and the upstream connections a request holds while in flight.
 *
 * - Connections (`watchConnections`): open TCP connections per peer address and listener. One past
 *   `maxConnectionsPerAddress` is closed as it arrives (before any TLS work). Trusted proxies are not
 *   counted: a load balancer brings every client over its few addresses.
 * - Requests (`admit`): the client address is the one the trusted-proxy rules give (the peer, or behind a
 *   trusted proxy the rightmost untrusted X-Forwarded-For hop, see forwarded-headers.ts). Each address
 *   has a token bucket of `2 × maxRequestRatePerAddress` refilled at `maxRequestRatePerAddress` per
 *   second; an HTTP/1.1 request, an HTTP/2 stream (reset ones too: that is rapid reset) and a WebSocket
 *   upgrade (`admitUpgrade`) each take one.
 *   Past the rate a request gets 429 with Retry-After: 1 and never reaches an upstream.
 * - Requests in flight (admitted and not yet closed; each one forwarded holds one upstream connection
 *   for that time): while its connection has `maxUpstreamRequestsPerConnection`, or its address
 *   `maxUpstreamRequestsPerAddress`, a request waits, in order of arrival, until one of them closes. A
 *   waiting request holds no upstream connection, and its own bounds still run (the client may reset
 *   it, HTTP/2's request deadline, the listener's timeouts); one that closes while waiting is dropped. So
 *   128 slow uploads on one session hold at most the cap's upstream connections, and a browser page with
 *   many slow requests is slowed, not broken.
 * - Rapid reset and other stream floods: what costs is the connection, not the answer, so an HTTP/2
 *   session that has `ABUSIVE_REFUSALS` streams refused for the rate is destroyed at once (a GOAWAY
 *   ENHANCE_YOUR_CALM is attempted, not waited for), and its address owes a full burst: until its bucket is positive again its new
 *   connections are closed as they arrive (before TLS) and its requests refused.
 * - An IPv6 client counts by its /64 (one subscriber's usual allocation, from which it can pick any
 *   address), an IPv4 one by its address (IPv4-mapped IPv6 peers as IPv4).
 * - Every refusal, and every request that has to wait, is counted (LimitObserver). The state per address is dropped once it has nothing in
 *   flight and its bucket is full again, swept every few seconds, so a scan from many addresses leaves
 *   nothing behind. `close()` stops the sweep. Nothing here throws.
 */
import type { IncomingMessage } from 'node:http';
import http2 from 'node:http2';
import type net from 'node:net';
import type { Duplex } from 'node:stream';
import type { TrustedProxies } from '../config.js';
import type { Limit, LimitObserver } from '../metrics.js';
import { sendError, sendErrorToSocket } from './error-responses.js';
import { clientAddress } from './forwarded-headers.js';
import type { ProxyRequest, ProxyResponse } from './types.js';

export interface ClientLimitsOptions {
  trustedProxies: TrustedProxies;
  maxConnectionsPerAddress: number;
  /** Requests per second; bursts of twice as many pass. */
  maxRequestRatePerAddress: number;
  maxUpstreamRequestsPerConnection: number;
  maxUpstreamRequestsPerAddress: number;
  observer: LimitObserver;
}

interface AddressState {
  inFlight: number;
  tokens: number;
  /** performance.now() of the last refill. */
  at: number;
  /** Requests waiting for a slot, oldest first. */
  waiting: Waiting[];
}

interface Waiting {
  /** The HTTP/1.1 socket or the HTTP/2 session. */
  connection: object;
  res: ProxyResponse;
  proceed: () => void;
}

const SWEEP_MS = 10_000;
/** Rate refusals one HTTP/2 session may collect before it is closed; a browser never gets one. */
const ABUSIVE_REFUSALS = 32;

const RATE_REFUSAL = 'too many requests from your address; slow down and try again.';

export class ClientLimits {
  private readonly addresses = new Map<string, AddressState>();
  /** In-flight requests per client connection (the HTTP/1.1 socket or the HTTP/2 session). */
  private readonly connections = new WeakMap<object, number>();
  /** Streams refused for the rate, per HTTP/2 session. */
  private readonly refusals = new WeakMap<http2.Http2Session, number>();
  private readonly burst: number;
  private readonly sweeper: NodeJS.Timeout;

  constructor(private readonly options: ClientLimitsOptions) {
    this.burst = 2 * options.maxRequestRatePerAddress;
    this.sweeper = setInterval(() => this.sweep(performance.now()), SWEEP_MS).unref();
  }

  /** Counts `server`'s connections per peer address and closes those over the limit. */
  watchConnections(server: net.Server): void {
    const open = new Map<string, number>();
    server.on('connection', (socket: net.Socket) => {
      const remote = socket.remoteAddress;
      if (remote === undefined || this.options.trustedProxies.has(remote)) return;
      const peer = limitKey(clientAddress(undefined, remote, this.options.trustedProxies));
      const count = open.get(peer) ?? 0;
      const refused: Limit | undefined =
        count >= this.options.maxConnectionsPerAddress ? 'connections_per_address' : this.inDebt(peer) ? 'request_rate_per_address' : undefined;
      if (refused !== undefined) {
        this.options.observer.limitHit(refused);
        socket.destroy();
        return;
      }
      open.set(peer, count + 1);
      socket.once('close', () => {
        const left = open.get(peer)! - 1;
        if (left === 0) open.delete(peer);
        else open.set(peer, left);
      });
    });
  }

  /**
   * Takes one request: `proceed` is called now or, while the caps are full, once a slot frees (the slot
   * is given back when `res` closes); never when the request was refused (answered 429) or closed while
   * it waited.
   */
  admit(req: ProxyRequest, res: ProxyResponse, proceed: () => void): void {
    const state = this.stateOf(clientLimitKey(req, this.options.trustedProxies));
    if (state.tokens < 1) {
      this.options.observer.limitHit('request_rate_per_address');
      if ('stream' in req && this.abusive(req.stream.session, state)) return;
      if (!res.headersSent) res.setHeader('retry-after', '1');
      sendError(res, 429, RATE_REFUSAL);
      return;
    }
    state.tokens -= 1;
    const waiting: Waiting = { connection: clientConnection(req), res, proceed };
    const full = this.full(state, waiting.connection);
    if (full === undefined) {
      this.start(state, waiting);
      return;
    }
    this.options.observer.limitHit(full);
    state.waiting.push(waiting);
    res.once('close', () => {
      const at = state.waiting.indexOf(waiting);
      if (at !== -1) state.waiting.splice(at, 1);
    });
  }

  /**
   * Takes one WebSocket upgrade from the request rate (a tunnel is not a request in flight): true when it
   * may go on, false when it was refused and the socket answered 429 and closed.
   */
  admitUpgrade(req: IncomingMessage, socket: Duplex): boolean {
    if (this.takeToken(req)) return true;
    sendErrorToSocket(socket, 429, RATE_REFUSAL);
    return false;
  }

  /** The same for a WebSocket over an HTTP/2 stream (RFC 8441 extended CONNECT), answered on the stream. */
  admitExtendedConnect(req: ProxyRequest, res: ProxyResponse): boolean {
    if (this.takeToken(req)) return true;
    res.setHeader('retry-after', '1');
    sendError(res, 429, RATE_REFUSAL);
    return false;
  }

  private takeToken(req: ProxyRequest): boolean {
    const state = this.stateOf(clientLimitKey(req, this.options.trustedProxies));
    if (state.tokens >= 1) {
      state.tokens -= 1;
      return true;
    }
    this.options.observer.limitHit('request_rate_per_address');
    return false;
  }

  close(): void {
    clearInterval(this.sweeper);
  }

  /** The state of a client address (a `limitKey`), refilled to now. */
  private stateOf(key: string): AddressState {
    const now = performance.now();
    let state = this.addresses.get(key);
    if (state === undefined) {
      state = { inFlight: 0, tokens: this.burst, at: now, waiting: [] };
      this.addresses.set(key, state);
    } else {
      this.refill(state, now);
    }
    return state;
  }

  /** Which cap keeps a request of `connection` waiting, if one does. */
  private full(state: AddressState, connection: object): Limit | undefined {
    if ((this.connections.get(connection) ?? 0) >= this.options.maxUpstreamRequestsPerConnection) return 'upstream_requests_per_connection';
    if (state.inFlight >= this.options.maxUpstreamRequestsPerAddress) return 'upstream_requests_per_address';
    return undefined;
  }

  private start(state: AddressState, request: Waiting): void {
    const { connection } = request;
    state.inFlight++;
    this.connections.set(connection, (this.connections.get(connection) ?? 0) + 1);
    request.res.once('close', () => {
      state.inFlight--;
      this.connections.set(connection, this.connections.get(connection)! - 1);
      this.startWaiting(state);
    });
    request.proceed();
  }

  /** Starts the waiting requests of `state` that fit now, oldest first. */
  private startWaiting(state: AddressState): void {
    for (let i = 0; i < state.waiting.length && state.inFlight < this.options.maxUpstreamRequestsPerAddress; ) {
      const next = state.waiting[i]!;
      if (this.full(state, next.connection) !== undefined) {
        i++;
        continue;
      }
      state.waiting.splice(i, 1);
      this.start(state, next);
    }
  }

  /** Counts a rate refusal on `session`; at ABUSIVE_REFUSALS closes it and puts its address in debt. */
  private abusive(session: http2.Http2Session | undefined, state: AddressState): boolean {
    if (session === undefined) return false;
    const refusals = (this.refusals.get(session) ?? 0) + 1;
    this.refusals.set(session, refusals);
    if (refusals < ABUSIVE_REFUSALS) return false;
    state.tokens = -this.burst;
    session.destroy(undefined, http2.constants.NGHTTP2_ENHANCE_YOUR_CALM);
    return true;
  }

  /** Whether `address` has used more than its requests, so that a new connection is refused. */
  private inDebt(address: string): boolean {
    const state = this.addresses.get(address);
    if (state === undefined) return false;
    this.refill(state, performance.now());
    return state.tokens < 1;
  }

  private refill(state: AddressState, now: number): void {
    state.tokens = Math.min(this.burst, state.tokens + ((now - state.at) / 1000) * this.options.maxRequestRatePerAddress);
    state.at = now;
  }

  private sweep(now: number): void {
    for (const [address, state] of this.addresses) {
      this.refill(state, now);
      if (state.inFlight === 0 && state.waiting.length === 0 && state.tokens >= this.burst) this.addresses.delete(address);
    }
  }
}

/** The request's client address (see the module header) as per-address limits count it. */
export function clientLimitKey(req: ProxyRequest, trustedProxies: TrustedProxies): string {
  return limitKey(clientAddress(req.headers['x-forwarded-for'], req.socket.remoteAddress ?? '', trustedProxies));
}

/** What per-connection limits count by: the HTTP/1.1 socket or the HTTP/2 session. */
export function clientConnection(req: ProxyRequest): object {
  return 'stream' in req ? (req.stream.session ?? req.socket) : req.socket;
}

/** What per-address limits count by: an IPv4 address, or the /64 of an IPv6 address (`2001:db8:0:1::/64`). */
export function limitKey(address: string): string {
  if (!address.includes(':')) return address;
  const [head = '', tail] = address.split('::');
  const groups = head === '' ? [] : head.split(':');
  if (tail !== undefined) {
    const rest = tail === '' ? [] : tail.split(':');
    while (groups.length + rest.length < 8) groups.push('0');
    groups.push(...rest);
  }
  return `${groups.slice(0, 4).map((g) => g.replace(/^0+(?=.)/, '').toLowerCase()).join(':')}::/64`;
}
