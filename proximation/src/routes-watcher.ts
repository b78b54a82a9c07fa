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
 *
 * A file that cannot be read or fails validation at start leaves the proxy with no valid table: it
 * serves an empty one, `problem` says why (for /healthz, which then answers 503, so a rolling deploy
 * does not replace good instances with empty ones) until a valid table is read, and nothing claims a
 * last good table that does not exist. `lastGood` is the table accepted last from the file (or the
 * empty one of a missing file at start), undefined before. Each table accepted from the file is kept as
 * the last good copy beside it (keepLastGoodCopy in @proximation/shared; a failure to write it is
 * logged, it never stops serving), and the log of a rejected table says where that copy is.
 */
import { FileStorage, emptyRoutingTable, errorMessage, keepLastGoodCopy, lastGoodCopyGeneration, lastGoodCopyPath, parseRoutingTable, type RoutingTable, type Storage } from '@proximation/shared';
import type { Logger } from './logger.js';
import { pollEvery } from './poll-loop.js';

export class RoutesWatcher {
  private lastText: string | undefined;
  private current: RoutingTable | undefined;
  private loop: { stop(): void } | undefined;
  private good: RoutingTable | undefined;
  private why: string | undefined;
  /** Reads run one after another, so an older read can never overwrite what a newer one accepted. */
  private reads: Promise<void> = Promise.resolve();
  private unwatch: (() => void) | undefined;
  private unavailable = false;
  /** How log lines name the table. */
  private readonly path: string;
  /** The table's file on a file storage, beside which the last good copy is kept. */
  private readonly filePath: string | undefined;

  constructor(
    private readonly storage: Storage,
    private readonly key: string,
    private readonly pollMs: number,
    private readonly log: Logger,
    private readonly onTable: (table: RoutingTable) => void,
    /** Rules of the serving side beyond the table's own validation; throws to reject a table. */
    private readonly check: (table: RoutingTable) => void = () => {},
  ) {
    this.filePath = storage instanceof FileStorage ? storage.pathOf(key) : undefined;
    this.path = this.filePath ?? `${key} in ${storage.location}`;
  }

  /** True while the last read of the table failed (its storage unreachable): serving goes on from memory. */
  get storageUnavailable(): boolean {
    return this.unavailable;
  }

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
    if (this.storage.notifies) {
      this.unwatch = await this.storage.watch((key) => {
        if (key === undefined || key === this.key) void this.poll();
      });
    }
    this.loop = pollEvery(this.pollMs, () => this.poll());
    return this.current;
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
      if (!this.unavailable) await this.refused('cannot read the routing table', errorMessage(err));
      this.unavailable = true;
      return;
    }
    if (this.unavailable) this.log.info({ path: this.path }, 'routing table readable again');
    this.unavailable = false;
    if (content === undefined) {
      if (this.good === undefined && this.why === undefined) this.accept(emptyRoutingTable(), undefined);
      else if (this.lastText !== undefined) {
        await this.refused('routing table file disappeared', undefined);
        this.lastText = undefined;
      }
      return;
    }
    const text = content.toString('utf8');
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
    if (this.filePath === undefined) return;
    await keepLastGoodCopy(this.filePath, table).catch((err: unknown) =>
      this.log.warn({ path: lastGoodCopyPath(this.filePath!), err: errorMessage(err) }, 'could not keep the last good copy of the routing table'),
    );
  }

  /** Logs why the file was not taken, saying what is served instead and where a valid copy is. */
  private async refused(what: string, err: string | undefined): Promise<void> {
    // The last good copy is a file beside the table; a table in Redis has none.
    const copy = this.filePath === undefined ? undefined : lastGoodCopyPath(this.filePath);
    const copyGeneration = this.filePath === undefined ? undefined : await lastGoodCopyGeneration(this.filePath).catch(() => undefined);
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
    this.loop?.stop();
    this.unwatch?.();
    await this.reads;
  }
}
