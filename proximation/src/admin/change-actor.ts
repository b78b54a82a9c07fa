/**
 * Who sent an admin API change, for the change log (change-log.ts in @proximation/shared): the peer
 * address and User-Agent of the connection, plus what the client says of itself in
 * `Proximation-Actor-User` / `Proximation-Actor-Host` (`deploy` sends its user and host name) and
 * `Proximation-Actor-Via: status-page` (the status page). The self-description is the caller's claim,
 * taken as given from a holder of the admin token, for humans reading the log; it is cut to a bounded
 * length and never interpreted.
 */
import type http from 'node:http';
import { errorMessage, recordRoutingChange, type ChangeLogEntry, type RoutesLocation, type RoutingTable, type RoutingTableChange } from '@proximation/shared';
import type { Logger } from '../logger.js';

function header(req: http.IncomingMessage, name: string): string | undefined {
  const value = req.headers[name];
  return typeof value === 'string' && value !== '' ? value : undefined;
}

export function changeActor(req: http.IncomingMessage): ChangeLogEntry['by'] {
  return {
    user: header(req, 'proximation-actor-user'),
    host: header(req, 'proximation-actor-host'),
    peer: req.socket.remoteAddress,
    userAgent: header(req, 'user-agent'),
    via: header(req, 'proximation-actor-via') === 'status-page' ? 'status-page' : 'admin-api',
  };
}

/** Appends the change that made `table` to the log; a failure is logged, not thrown: the table change itself stands. */
export async function recordChange(routes: RoutesLocation, table: RoutingTable, change: RoutingTableChange, by: ChangeLogEntry['by'], log: Logger): Promise<void> {
  try {
    await recordRoutingChange(routes, table, change, by);
  } catch (err) {
    log.warn({ err: errorMessage(err), generation: table.generation }, 'could not record the change in the change log');
  }
}
