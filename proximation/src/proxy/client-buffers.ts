/**
 * Caps on the response bytes the proxy holds for one client connection and for one client address, so
 * that a client that stops reading (slow read) on many streams cannot make the proxy buffer what many
 * upstreams send it: each budget counts bytes written towards the client and not yet flushed (taken by
 * the socket, or sent within HTTP/2 flow control).
 *
 * Credit: an exchange reads its upstream only while it holds `readSize` bytes of credit from both its
 * connection's and its address's budget, and a budget's `used` is the credit its exchanges hold plus the
 * bytes they wrote that are not flushed. `readSize` is the most one upstream read hands over (the pool's
 * `maxReadBytes`: 64 KiB, the HTTP/1.1 read buffer; 16 KiB, one HTTP/2 DATA frame), so no read takes a
 * budget past its limit. After each chunk the exchange tops its credit up (`topUp`); when a budget cannot give it, the
 * exchange pauses its upstream (back-pressure: the upstream's TCP or HTTP/2 window fills) and `wait`s;
 * waiters are woken in order of arrival once flushes free enough. A request takes its first credit before
 * it goes upstream, waiting the same way.
 *
 * Released: a write's bytes when its callback runs (flushed); unused credit when the exchange reads no
 * more (`done`); whatever is left, and a place in a queue, when the response closes (finished, reset, or
 * the client gone), since a destroyed stream may never call its write callbacks.
 *
 * Each wait counts once for the budget that made it wait (LimitObserver). The client address is the one
 * client-limits.ts counts (trusted-proxy rules, an IPv6 /64); an address's budget is dropped once it has
 * no exchange open, a connection's with the connection. `bufferedBytes` (the gauge) is the bytes written
 * and not flushed, over all clients. Nothing here throws.
 */
import type { TrustedProxies } from '../config.js';
import type { Limit, LimitObserver } from '../metrics.js';
import { clientConnection, clientLimitKey } from './client-limits.js';
import type { ProxyRequest, ResponseSink } from './types.js';

export interface ClientBuffersOptions {
  trustedProxies: TrustedProxies;
  maxBufferedBytesPerConnection: number;
  maxBufferedBytesPerAddress: number;
  observer: LimitObserver;
}


interface Budget {
  readonly limit: number;
  readonly limitName: Limit;
  used: number;
  /** Accounts waiting for credit, oldest first. */
  readonly waiting: BufferAccount[];
}

interface AddressBudget extends Budget {
  /** Exchanges open on it: the budget is dropped at 0. */
  accounts: number;
}

export class ClientBuffers {
  private readonly connections = new WeakMap<object, Budget>();
  private readonly addresses = new Map<string, AddressBudget>();
  private buffered = 0;

  constructor(private readonly options: ClientBuffersOptions) {}

  /** Bytes written to clients and not flushed yet. */
  get bufferedBytes(): number {
    return this.buffered;
  }

  /** The account of one exchange; it closes with `res`. */
  open(req: ProxyRequest, res: ResponseSink): BufferAccount {
    const connection = clientConnection(req);
    let perConnection = this.connections.get(connection);
    if (perConnection === undefined) {
      perConnection = { limit: this.options.maxBufferedBytesPerConnection, limitName: 'buffered_bytes_per_connection', used: 0, waiting: [] };
      this.connections.set(connection, perConnection);
    }
    const key = clientLimitKey(req, this.options.trustedProxies);
    let perAddress = this.addresses.get(key);
    if (perAddress === undefined) {
      perAddress = { limit: this.options.maxBufferedBytesPerAddress, limitName: 'buffered_bytes_per_address', used: 0, waiting: [], accounts: 0 };
      this.addresses.set(key, perAddress);
    }
    perAddress.accounts++;
    const account = new BufferAccount(this, perConnection, perAddress);
    res.once('close', () => {
      account.close();
      if (--perAddress.accounts === 0) this.addresses.delete(key);
    });
    return account;
  }

  /** @internal bytes written (positive) or flushed (negative) */
  countBuffered(delta: number): void {
    this.buffered += delta;
  }

  /** @internal `bytes` of `budget` are free again: wakes its waiters that fit now, oldest first. */
  release(budget: Budget, bytes: number): void {
    budget.used -= bytes;
    const { waiting } = budget;
    while (waiting.length > 0) {
      const next = waiting[0]!;
      if (!next.fits(budget)) break;
      waiting.shift();
      // The other budget may still be short: then it waits there.
      next.retry();
    }
  }

  /** @internal counts that `budget` made an exchange wait */
  waited(budget: Budget): void {
    this.options.observer.limitHit(budget.limitName);
  }
}

/** One exchange's share of its connection's and address's budgets. */
export class BufferAccount {
  /** Credit the exchange must hold to read on: the most one read of its upstream brings. Set before `topUp`. */
  readSize = 0;
  /** Credit held and not used yet. */
  private credit = 0;
  /** Bytes written and not flushed. */
  private unflushed = 0;
  private closed = false;
  private wake: (() => void) | undefined;
  /** The budget whose queue this account is in. */
  private queuedOn: Budget | undefined;

  constructor(
    private readonly owner: ClientBuffers,
    private readonly perConnection: Budget,
    private readonly perAddress: Budget,
  ) {}

  /** Whether the exchange may read on: it holds `readSize`, topped up now if both budgets have it. */
  topUp(): boolean {
    if (this.closed) return false;
    const need = this.readSize - this.credit;
    if (need <= 0) return true;
    if (this.shortOf() !== undefined) return false;
    this.perConnection.used += need;
    this.perAddress.used += need;
    this.credit += need;
    return true;
  }

  /** Calls `wake` once `topUp` has succeeded, in order of arrival; never after `close` or `done`. */
  wait(wake: () => void): void {
    if (this.closed || this.wake !== undefined) return;
    if (this.topUp()) {
      wake();
      return;
    }
    const short = this.shortOf()!;
    this.wake = wake;
    this.owner.waited(short);
    this.enqueue(short);
  }

  /** `res.write(chunk)`, its bytes counted (against the credit) until flushed; returns what write returned. */
  write(res: ResponseSink, chunk: Buffer): boolean {
    const bytes = chunk.length;
    this.credit -= bytes;
    if (this.credit < 0) {
      // More than the credit (no read should bring that): counted all the same.
      this.perConnection.used -= this.credit;
      this.perAddress.used -= this.credit;
      this.credit = 0;
    }
    this.unflushed += bytes;
    this.owner.countBuffered(bytes);
    return res.write(chunk, () => this.flushed(bytes));
  }

  /** The exchange reads no more: its unused credit goes back, and it leaves the queue. */
  done(): void {
    this.leaveQueue();
    this.giveBack(this.credit);
    this.credit = 0;
  }

  close(): void {
    if (this.closed) return;
    this.done();
    this.closed = true;
    this.owner.countBuffered(-this.unflushed);
    this.giveBack(this.unflushed);
    this.unflushed = 0;
  }

  /** @internal whether this account's top-up fits `budget` now */
  fits(budget: Budget): boolean {
    return budget.used + this.readSize - this.credit <= budget.limit;
  }

  /** @internal taken off `queuedOn`'s queue by its release: tops up, or waits on the budget still short */
  retry(): void {
    this.queuedOn = undefined;
    const short = this.shortOf();
    if (short !== undefined) {
      this.enqueue(short);
      return;
    }
    const wake = this.wake!;
    this.wake = undefined;
    this.topUp();
    wake();
  }

  private flushed(bytes: number): void {
    if (this.closed) return;
    this.unflushed -= bytes;
    this.owner.countBuffered(-bytes);
    this.giveBack(bytes);
  }

  private giveBack(bytes: number): void {
    if (bytes === 0) return;
    this.owner.release(this.perConnection, bytes);
    this.owner.release(this.perAddress, bytes);
  }

  /** The budget that cannot give this account its top-up now, if one cannot. */
  private shortOf(): Budget | undefined {
    if (!this.fits(this.perConnection)) return this.perConnection;
    if (!this.fits(this.perAddress)) return this.perAddress;
    return undefined;
  }

  private enqueue(budget: Budget): void {
    this.queuedOn = budget;
    budget.waiting.push(this);
  }

  private leaveQueue(): void {
    this.wake = undefined;
    const budget = this.queuedOn;
    if (budget === undefined) return;
    this.queuedOn = undefined;
    const at = budget.waiting.indexOf(this);
    if (at !== -1) budget.waiting.splice(at, 1);
  }
}
