/**
 * Where deploy reads and changes the routing table. Commands talk only to this interface, so each way
 * of reaching the table (the file on the shared directory, the proxy's admin API) is one implementation
 * chosen in command-line.ts.
 *
 * What every implementation guarantees:
 * - `read` resolves with the current, validated table. Its `generation` identifies that state of the
 *   table (an HTTP implementation's ETag). A file that does not exist is ERR_ROUTES_NOT_FOUND for every
 *   command but `site add`, whose update creates it (`created` in the result); a proxy's admin API
 *   answers its own (possibly empty) table.
 * - `update` applies the request's change (see RoutingTableChange in @proximation/shared) to the table
 *   as it is at that moment, atomically with respect to every other writer, so the change's guards
 *   (TrafficGuard) are evaluated on the very table it changes. With `healthCheck`, the upstreams the
 *   change would newly send traffic to must pass that check first (applyChangeRequest in
 *   @proximation/shared), run from where the table is written: by deploy in file mode, by the proxy in
 *   API mode, which is where the traffic will come from. It resolves with the table after the change,
 *   whether anything changed and the upstreams that passed the check; a change that changes nothing
 *   writes nothing.
 * - Both reject with ProximationError, with the same codes in every mode: the operation's own
 *   (ERR_UNKNOWN_SITE, ERR_VERSION_ACTIVE, ERR_UNCHECKED_UPSTREAMS, ERR_SUPERSEDED, ...), the health
 *   check's (HealthCheckFailedError, ERR_HEALTH_CHECK_FAILED, with the results), the table's
 *   (ERR_ROUTES_INVALID, ERR_ROUTES_NEWER_SCHEMA) and the transport's (ERR_LOCK_TIMEOUT,
 *   ERR_PROXY_UNREACHABLE, ...). A rejected update leaves the table as it was.
 * - `update`'s `observer`, if given, is told what the update waits for, as it happens: in file mode each
 *   health check and attempt and each wait for the table's lock; in API mode that the proxy is running
 *   the check (its attempts are not visible from here). It never changes what the update does.
 */
import type { ChangeObserver, FleetStatus, FleetStorage, HealthCheckOptions, LeaseRecord, RoutingChangeRequest, RoutingChangeResult, RoutingTable } from '@proximation/shared';

export interface UpdateObserver extends ChangeObserver {
  /** The proxy at `proxy` is running the request's health check (API mode). */
  remoteCheck?(proxy: string, health: HealthCheckOptions): void;
}

export interface RoutesTarget {
  /** Where the table is: the file's path, or the proxy's admin URL. */
  readonly location: string;
  read(): Promise<RoutingTable>;
  update(request: RoutingChangeRequest, observer?: UpdateObserver): Promise<RoutingChangeResult>;
  /** The members' lease records (members.ts), where this target can read them (file mode); else undefined. */
  readonly leases?: () => Promise<readonly LeaseRecord[]>;
  /** The fleet records beside the table (leases, heartbeats), where this target can reach them (file mode); else undefined. */
  readonly fleet?: FleetStorage;
  /** The fleet: live instances, sites, members with leases and in-flight counts (fleet-status.ts in shared). */
  status(): Promise<FleetStatus>;
}
