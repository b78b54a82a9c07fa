/**
 * Keeps the proxy on the newest valid routing table.
 *
 * It polls by reading the file: NFS (EFS) delivers no inotify events for another machine's writes, and a
 * stat-only poll (fs.watchFile, chokidar's polling) can lag behind by the attribute cache (3-60 s), while
 * opening the file revalidates it (close-to-open consistency). The file is small, so reading it every
 * second costs little; it is parsed only when its bytes change.
 *
 * On a storage that notifies (Redis pub/sub), a change notification for the table's key, or a
 * reconnection (anything may have changed meanwhile), reads it at once; the poll stays as the repair
 * for a missed message, so `pollMs` can be long there. A read that fails (Redis unreachable) is logged
 * and the last good table stays; `storageUnavailable` says so until a read succeeds again.
 *
 * A table that fails validation never replaces the last good one: the error is logged (once per distinct
 * content) and serving goes on. A missing file at start means an empty table (a fresh volume); a file
 * that disappears later is treated as a mistake and the last good table stays.
 */
import { FileStorage, emptyRoutingTable, errorMessage, parseRoutingTable, type RoutingTable, type Storage } from '@proximation/shared';
import type { Logger } from './logger.js';

export class RoutesWatcher {
  private lastText: string | undefined;
  private current: RoutingTable | undefined;
  private timer: NodeJS.Timeout | undefined;
  /** Reads run one after another, so an older read can never overwrite what a newer one accepted. */
  private reads: Promise<void> = Promise.resolve();
  private unwatch: (() => void) | undefined;
  private unavailable = false;
  /** How log lines name the table. */
  private readonly path: string;

  constructor(
    private readonly storage: Storage,
    private readonly key: string,
    private readonly pollMs: number,
    private readonly log: Logger,
    private readonly onTable: (table: RoutingTable) => void,
    /** Rules of the serving side beyond the table's own validation; throws to reject a table. */
    private readonly check: (table: RoutingTable) => void = () => {},
  ) {
    this.path = storage instanceof FileStorage ? storage.pathOf(key) : `${key} in ${storage.location}`;
  }

  /** True while the last read of the table failed (its storage unreachable): serving goes on from memory. */
  get storageUnavailable(): boolean {
    return this.unavailable;
  }

  get table(): RoutingTable | undefined {
    return this.current;
  }

  /** Loads the table once (so the proxy starts with routes) and then keeps polling. */
  async start(): Promise<RoutingTable> {
    await this.poll();
    if (this.current === undefined) this.accept(emptyRoutingTable(), undefined);
    if (this.storage.notifies) {
      this.unwatch = await this.storage.watch((key) => {
        if (key === undefined || key === this.key) void this.poll();
      });
    }
    this.schedule();
    return this.current!;
  }

  private schedule(): void {
    this.timer = setTimeout(() => {
      void this.poll().finally(() => {
        if (this.timer !== undefined) this.schedule();
      });
    }, this.pollMs);
    this.timer.unref();
  }

  /**
   * Reads the file after any read in progress; exposed so a local writer (the admin API) need not wait
   * for the next tick.
   */
  poll(): Promise<void> {
    this.reads = this.reads
      .then(() => this.read())
      .catch((err: unknown) => this.log.error({ path: this.path, err: errorMessage(err) }, 'applying the routing table failed'));
    return this.reads;
  }

  private async read(): Promise<void> {
    let content: Buffer | undefined;
    try {
      content = await this.storage.read(this.key);
    } catch (err) {
      if (!this.unavailable) this.log.error({ path: this.path, err: errorMessage(err) }, 'cannot read the routing table; still serving the last good one');
      this.unavailable = true;
      return;
    }
    if (this.unavailable) this.log.info({ path: this.path }, 'routing table readable again');
    this.unavailable = false;
    if (content === undefined) {
      if (this.current !== undefined && this.lastText !== undefined) {
        this.log.error({ path: this.path }, 'routing table file disappeared; still serving the last good table');
        this.lastText = undefined;
      }
      return;
    }
    const text = content.toString('utf8');
    if (text === this.lastText) return;
    this.lastText = text;
    try {
      const table = parseRoutingTable(text, this.path);
      this.check(table);
      this.accept(table, text);
    } catch (err) {
      this.log.error({ path: this.path, err: errorMessage(err) }, 'routing table rejected; still serving the last good one');
    }
  }

  private accept(table: RoutingTable, text: string | undefined): void {
    this.current = table;
    this.lastText = text;
    this.log.info({ generation: table.generation, sites: table.sites.length }, 'routing table loaded');
    this.onTable(table);
  }

  async stop(): Promise<void> {
    clearTimeout(this.timer);
    this.timer = undefined;
    this.unwatch?.();
    await this.reads;
  }
}
