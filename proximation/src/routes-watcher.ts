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
 *
 * A file that cannot be read or fails validation at start leaves the proxy with no valid table: it
 * serves an empty one, `problem` says why (for /healthz, which then answers 503, so a rolling deploy
 * does not replace good instances with empty ones) until a valid table is read, and nothing claims a
 * last good table that does not exist. `lastGood` is the table accepted last from the file (or the
 * empty one of a missing file at start), undefined before. Each table accepted from the file is kept as
 * the last good copy beside it (keepLastGoodCopy in @proximation/shared; a failure to write it is
 * logged, it never stops serving), and the log of a rejected table says where that copy is.
 */
import fs from 'node:fs/promises';
import { emptyRoutingTable, errorMessage, keepLastGoodCopy, lastGoodCopyGeneration, lastGoodCopyPath, parseRoutingTable, type RoutingTable } from '@proximation/shared';
import type { Logger } from './logger.js';

export class RoutesWatcher {
  private lastText: string | undefined;
  private current: RoutingTable | undefined;
  private good: RoutingTable | undefined;
  private why: string | undefined;
  private timer: NodeJS.Timeout | undefined;
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

  /** The table served now (the empty one while no valid table has been read). */
  get table(): RoutingTable | undefined {
    return this.current;
  }

  /** The valid table accepted last; undefined while none has been. */
  get lastGood(): RoutingTable | undefined {
    return this.good;
  }

  /** Why no valid routing table has been loaded yet; undefined once one has. */
  get problem(): string | undefined {
    return this.why;
  }

  /** Loads the table once (so the proxy starts with routes) and then keeps polling. */
  async start(): Promise<RoutingTable> {
    await this.poll();
    if (this.current === undefined) {
      this.current = emptyRoutingTable();
      this.onTable(this.current);
    }
    this.schedule();
    return this.current;
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
    let text: string;
    try {
      text = await fs.readFile(this.path, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') {
        if (this.good === undefined && this.why === undefined) this.accept(emptyRoutingTable(), undefined);
        else if (this.lastText !== undefined) {
          await this.refused('routing table file disappeared', undefined);
          this.lastText = undefined;
        }
        return;
      }
      await this.refused('cannot read the routing table', errorMessage(err));
      return;
    }
    if (text === this.lastText) return;
    this.lastText = text;
    let table: RoutingTable;
    try {
      table = parseRoutingTable(text, this.path);
      this.check(table);
    } catch (err) {
      await this.refused('routing table rejected', errorMessage(err));
      return;
    }
    this.accept(table, text);
    await keepLastGoodCopy(this.path, table).catch((err: unknown) =>
      this.log.warn({ path: lastGoodCopyPath(this.path), err: errorMessage(err) }, 'could not keep the last good copy of the routing table'),
    );
  }

  /** Logs why the file was not taken, saying what is served instead and where a valid copy is. */
  private async refused(what: string, err: string | undefined): Promise<void> {
    const copy = lastGoodCopyPath(this.path);
    const copyGeneration = await lastGoodCopyGeneration(this.path).catch(() => undefined);
    const restore = copyGeneration === undefined ? {} : { lastGoodCopy: copy, lastGoodCopyGeneration: copyGeneration };
    const fields = { path: this.path, ...(err === undefined ? {} : { err }), ...restore };
    const hint = copyGeneration === undefined ? '' : `; a copy of the last valid table (generation ${copyGeneration}) is at ${copy}, copy it over the file to restore it`;
    if (this.good !== undefined) {
      this.log.error(fields, `${what}; still serving the last good one (generation ${this.good.generation})${hint}`);
      return;
    }
    this.why = `${what}: ${err ?? this.path}`;
    this.log.error(fields, `${what}; no valid routing table has been loaded, so no site is served and /healthz answers 503 until the file is fixed${hint}`);
  }

  private accept(table: RoutingTable, text: string | undefined): void {
    this.current = table;
    this.good = table;
    this.why = undefined;
    this.lastText = text;
    this.log.info({ generation: table.generation, sites: table.sites.length }, 'routing table loaded');
    this.onTable(table);
  }

  async stop(): Promise<void> {
    clearTimeout(this.timer);
    this.timer = undefined;
    await this.reads;
  }
}
