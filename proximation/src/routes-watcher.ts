/**
 * Keeps the proxy on the newest valid routing table.
 *
 * It polls by reading the file: NFS (EFS) delivers no inotify events for another machine's writes, and a
 * stat-only poll (fs.watchFile, chokidar's polling) can lag behind by the attribute cache (3-60 s), while
 * opening the file revalidates it (close-to-open consistency). The file is small, so reading it every
 * second costs little; it is parsed only when its bytes change.
 *
 * A table that fails validation never replaces the last good one: the error is logged (once per distinct
 * content) and serving goes on. A missing file at start means an empty table (a fresh volume); a file
 * that disappears later is treated as a mistake and the last good table stays.
 */
import fs from 'node:fs/promises';
import { emptyRoutingTable, errorMessage, parseRoutingTable, type RoutingTable } from '@proximation/shared';
import type { Logger } from './logger.js';
import { pollEvery } from './poll-loop.js';

export class RoutesWatcher {
  private lastText: string | undefined;
  private current: RoutingTable | undefined;
  private loop: { stop(): void } | undefined;
  /** Reads run one after another, so an older read can never overwrite what a newer one accepted. */
  private reads: Promise<void> = Promise.resolve();

  constructor(
    private readonly path: string,
    private readonly pollMs: number,
    private readonly log: Logger,
    private readonly onTable: (table: RoutingTable) => void,
    /** Rules of the serving side beyond the table's own validation; throws to reject a table. */
    private readonly check: (table: RoutingTable) => void = () => {},
  ) {}

  get table(): RoutingTable | undefined {
    return this.current;
  }

  /** Loads the table once (so the proxy starts with routes) and then keeps polling. */
  async start(): Promise<RoutingTable> {
    await this.poll();
    if (this.current === undefined) this.accept(emptyRoutingTable(), undefined);
    this.loop = pollEvery(this.pollMs, () => this.poll());
    return this.current!;
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
    let text: string;
    try {
      text = await fs.readFile(this.path, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') {
        if (this.current !== undefined && this.lastText !== undefined) {
          this.log.error({ path: this.path }, 'routing table file disappeared; still serving the last good table');
          this.lastText = undefined;
        }
        return;
      }
      this.log.error({ path: this.path, err: errorMessage(err) }, 'cannot read the routing table; still serving the last good one');
      return;
    }
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
    this.loop?.stop();
    await this.reads;
  }
}
