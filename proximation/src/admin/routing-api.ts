/**
 * The admin routing API: the same operations as `deploy` in file mode, over HTTP (wire format in
 * admin-api.ts of @proximation/shared). Callers are authorised before they get here (admin-server.ts).
 *
 * - `getRoutes`: the routing table as stored now (read from the storage, a file or Redis, not this
  *   instance's copy), with `ETag: "<generation>"`. When it cannot be read or is invalid, the table this instance serves
  *   (its last good one) instead, marked `Proximation-Routes-Source: memory` (the storage's error is logged),
  *   so an operator can see, and restore, what is served; with no valid table in memory either, the error.
  * - `postChange`: applies `{change, healthCheck?}` to the stored table with `updateRoutingTableWithLeases`
  *   (the shared lease lock, atomic write, expired members removed), so every instance writing through the shared storage converges
 *   on one table. With `healthCheck`, this proxy checks the upstreams first: it is where their traffic
 *   will come from (applyChangeRequest). `If-Match` (a list of ETags, or `*`) is checked on the table
 *   under the lock: another generation answers 412 with the current ETag and changes nothing. On
 *   success it re-reads the table at once (`afterChange`, the watcher's poll) so this instance serves
 *   the change when the answer goes out; other instances follow at their next poll. A client that goes
 *   away before the change is sent cancels it.
 *
 * An applied change is also appended to the change log (change-actor.ts) with who sent it.
 * Every change request is logged (info when applied, warn when refused) with who sent it (peer address,
 * user agent) and what (the change, the health check, the generation before and after, or the error).
 * Errors answer as api-http.ts maps their codes; an unexpected error is logged and answers 500.
 */
import type http from 'node:http';
import {
  ADMIN_CHANGES_PATH,
  ADMIN_ROUTES_PATH,
  MAX_CHANGE_REQUEST_BYTES,
  ProximationError,
  applyChangeRequest,
  applyRoutingTableChange,
  describeKey,
  errorMessage,
  isProximationError,
  parseChangeRequest,
  readRoutingTable,
  routingTableETag,
  serializeRoutingTable,
  updateRoutingTableWithLeases,
} from '@proximation/shared';
import type { ChangeResponseBody, FleetStorage, IssuancePolicy, RoutesLocation, RoutingChangeRequest, RoutingTable, RoutingTableStore } from '@proximation/shared';
import type { Logger } from '../logger.js';
import { readJsonBody, sendError, sendJson } from './api-http.js';
import { changeActor, recordChange } from './change-actor.js';

export interface RoutingApiOptions {
  /** Where the table is stored. */
  routes: RoutesLocation;
  /** The lease records beside it. */
  fleet: FleetStorage;
  /** The valid table this instance serves (the routes watcher's last good one); undefined while it has none. */
  lastGood: () => RoutingTable | undefined;
  /** Makes this instance serve the table just written. */
  afterChange: () => Promise<void>;
  /** The serving side's rules for a table (the routes watcher's); a change whose result breaks them is refused. */
  check: (table: RoutingTable) => void;
  /** How this proxy orders certificates, for the rules that depend on it (wildcard hosts need DNS-01). */
  issuancePolicy: IssuancePolicy;
  log: Logger;
}

const HEALTH_CHECK_USER_AGENT = 'proximation health check (admin API)';

export class RoutingApi {
  constructor(private readonly options: RoutingApiOptions) {}

  readonly getRoutes = async (_req: http.IncomingMessage, res: http.ServerResponse): Promise<void> => {
    let table: RoutingTable;
    let source = 'file';
    const { routes } = this.options;
    try {
      table = await readRoutingTable(routes.storage, routes.key);
    } catch (err) {
      const served = this.options.lastGood();
      if (served === undefined) {
        this.fail(res, err, `GET ${ADMIN_ROUTES_PATH}`);
        return;
      }
      this.options.log.warn({ path: describeKey(routes.storage, routes.key), err: errorMessage(err), generation: served.generation }, `GET ${ADMIN_ROUTES_PATH}: the stored routing table is unusable; answered with the table served`);
      table = served;
      source = 'memory';
    }
    const text = serializeRoutingTable(table);
    res.writeHead(200, {
      etag: routingTableETag(table.generation),
      'content-type': 'application/json; charset=utf-8',
      'content-length': Buffer.byteLength(text),
      'cache-control': 'no-store',
      'proximation-routes-source': source,
    });
    res.end(text);
  };

  readonly postChange = async (req: http.IncomingMessage, res: http.ServerResponse): Promise<void> => {
    const who = { peer: req.socket.remoteAddress, userAgent: req.headers['user-agent'] };
    const source = `POST ${ADMIN_CHANGES_PATH}`;
    const cancel = new AbortController();
    res.once('close', () => {
      if (!res.writableFinished) cancel.abort(new ProximationError('ERR_CLIENT_GONE', `${source}: the client went away before the change was sent; nothing changed.`));
    });
    let request: RoutingChangeRequest | undefined;
    // The table as last read, and the generation the change was applied to, for the answer and the log.
    let seen: RoutingTable | undefined;
    let generationBefore: number | undefined;
    const ifMatch = preconditionOf(req.headers['if-match']);
    const checked = (table: RoutingTable): RoutingTable => {
      seen = table;
      if (!ifMatch(table.generation)) {
        throw new ProximationError(
          'ERR_PRECONDITION_FAILED',
          `The routing table is at generation ${table.generation}, which If-Match (${req.headers['if-match']}) does not name; nothing changed. ` +
            `Read it again (GET ${ADMIN_ROUTES_PATH}), decide again, and send the change with If-Match: ${routingTableETag(table.generation)}.`,
        );
      }
      return table;
    };
    const { routes } = this.options;
    const store: RoutingTableStore = {
      read: async () => checked(await readRoutingTable(routes.storage, routes.key)),
      update: (change) =>
        updateRoutingTableWithLeases(
          routes,
          this.options.fleet,
          (table, clock) => {
            cancel.signal.throwIfAborted();
            generationBefore = checked(table).generation;
            const next = applyRoutingTableChange(table, change, new Date(), this.options.issuancePolicy, clock);
            if (next !== table) this.options.check(next);
            return next;
          },
          { signal: cancel.signal },
        ),
    };
    try {
      request = parseChangeRequest(await readJsonBody(req, MAX_CHANGE_REQUEST_BYTES, source), source);
      const result = await applyChangeRequest(store, request, { userAgent: HEALTH_CHECK_USER_AGENT, signal: cancel.signal });
      const { table, changed, healthChecked } = result;
      this.options.log.info(
        { ...who, change: request.change, healthCheck: request.healthCheck, healthChecked, generationBefore, generation: table.generation, changed },
        changed ? 'routing table changed through the admin API' : 'change request through the admin API: nothing to change',
      );
      if (changed) await recordChange(routes, table, request.change, changeActor(req), this.options.log);
      if (changed) await this.options.afterChange();
      const body: ChangeResponseBody = { table, changed, healthChecked };
      sendJson(res, 200, body, { etag: routingTableETag(table.generation) });
    } catch (err) {
      const code = isProximationError(err) ? err.code : undefined;
      this.options.log.warn({ ...who, change: request?.change, healthCheck: request?.healthCheck, code, err: errorMessage(err) }, 'change request through the admin API refused');
      this.fail(res, err, source, code === 'ERR_PRECONDITION_FAILED' && seen !== undefined ? { etag: routingTableETag(seen.generation) } : {});
    }
  };

  private fail(res: http.ServerResponse, err: unknown, source: string, headers: http.OutgoingHttpHeaders = {}): void {
    if (res.destroyed) return;
    if (isProximationError(err)) {
      sendError(res, err, headers);
      return;
    }
    this.options.log.error({ err: errorMessage(err), stack: err instanceof Error ? err.stack : undefined }, `${source} failed unexpectedly`);
    sendError(res, new ProximationError('ERR_INTERNAL', `${source} failed unexpectedly; the proxy's log has the details.`));
  }
}

/** If-Match as a test of the table's generation: absent or `*` always match; weak tags never do. */
function preconditionOf(header: string | undefined): (generation: number) => boolean {
  if (header === undefined || header.trim() === '*') return () => true;
  const tags = header.split(',').map((tag) => tag.trim());
  return (generation) => tags.includes(routingTableETag(generation));
}
