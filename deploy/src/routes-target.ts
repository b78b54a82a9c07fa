/**
 * Where deploy reads and changes the routing table. Commands talk only to this interface, so each way
 * of reaching the table (the file on the shared directory, the proxy's admin API) is one implementation
 * chosen in command-line.ts.
 *
 * What every implementation guarantees:
 * - `read` resolves with the current, validated table (an empty one, generation 0, when none exists
 *   yet). Its `generation` identifies that state of the table (an HTTP implementation's ETag).
 * - `update` applies `change` (see RoutingTableChange in @proximation/shared) to the table as it is at
 *   that moment, atomically with respect to every other writer, so the change's guards (TrafficGuard)
 *   are evaluated on the very table it changes. It resolves with the table after the change and
 *   whether anything changed; a change that changes nothing writes nothing.
 * - Both reject with ProximationError, with the same codes in every mode: the operation's own
 *   (ERR_UNKNOWN_SITE, ERR_VERSION_ACTIVE, ERR_UNCHECKED_UPSTREAMS, ERR_SUPERSEDED, ...), the table's
 *   (ERR_ROUTES_INVALID, ERR_ROUTES_NEWER_SCHEMA) and the transport's (ERR_LOCK_TIMEOUT, ...). A
 *   rejected update leaves the table as it was.
 */
import type { RoutingTable, RoutingTableChange, RoutingTableUpdate } from '@proximation/shared';

export interface RoutesTarget {
  read(): Promise<RoutingTable>;
  update(change: RoutingTableChange): Promise<RoutingTableUpdate>;
}
