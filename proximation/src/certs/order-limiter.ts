/**
 * At most `limit` tasks at once; the others wait in arrival order. Keeps a burst of new names (a routing
 * table with 100 new hosts) from opening 100 ACME orders at once. Never throws itself; `run` settles as
 * `task` does.
 */
export class OrderLimiter {
  private running = 0;
  private readonly waiting: (() => void)[] = [];

  constructor(private readonly limit: number) {}

  async run<T>(task: () => Promise<T>): Promise<T> {
    if (this.running >= this.limit) await new Promise<void>((resolve) => this.waiting.push(resolve));
    else this.running++;
    try {
      return await task();
    } finally {
      // Hand the slot straight to the next waiter, so running never drops below what is queued.
      const next = this.waiting.shift();
      if (next === undefined) this.running--;
      else next();
    }
  }
}
