/**
 * The protocol between the primary and its workers, over the cluster IPC channel with Node's "advanced"
 * serialization (structured clone: Dates and Buffers arrive as such). Messages on one channel arrive in
 * the order they were sent, which the protocol relies on: a worker has the table, the certificates and
 * the ticket keys of its `state` before `listen`, and a table before the certificates of its hosts.
 *
 * Start-up: worker → `hello`; primary → `state` (everything the worker needs); worker listens and says
 * `serving` (or `fatal`, then exits 1). Afterwards the primary sends `table`, `certificate`,
 * `certificate-removed`, `renewals` and `ticket-keys` as they change, answers `certificate-request` with
 * `certificate` or `certificate-none`, asks `status` (answered by `status-reply`: metrics when asked, traffic per upstream, in-flight
 * counts, generation, RSS, upstreams out of rotation), and finally `drain`. A worker whose channel closes (the primary died) drains by
 * itself.
 */
import type { AddressInfo } from 'node:net';
import type { MemberRenewal, RoutingTable, UpstreamTraffic } from '@proximation/shared';
import type { ServedCertificate } from '../serving.js';
import type { UnavailableUpstream } from '../proxy/upstreams.js';

/** Where a worker's Config comes from: it loads the same settings the primary loaded (config.ts). */
export interface SettingsSources {
  values: Record<string, string | boolean | string[] | undefined>;
  env: Record<string, string | undefined>;
  overrides: Record<string, string>;
}

export type PrimaryMessage =
  | {
      type: 'state';
      slot: number;
      settings: SettingsSources;
      table: RoutingTable;
      renewals: Map<string, MemberRenewal>;
      certificates: [string, ServedCertificate][];
      ticketKeys: Buffer;
    }
  | { type: 'table'; table: RoutingTable }
  /** The members' lease renewals, whenever one changed (members.ts). */
  | { type: 'renewals'; renewals: Map<string, MemberRenewal> }
  /** `asked`: the name of the `certificate-request` this answers, when `host` is its wildcard. */
  | { type: 'certificate'; host: string; cert: ServedCertificate; asked?: string }
  | { type: 'certificate-none'; host: string }
  | { type: 'certificate-removed'; host: string }
  | { type: 'ticket-keys'; keys: Buffer }
  /** `metrics`: whether to include the registry (a scrape) or only the counts (a heartbeat). */
  | { type: 'status'; id: number; metrics: boolean }
  | { type: 'drain'; deadline: number };

export interface WorkerStatus {
  routesGeneration: number;
  connections: number;
  websockets: number;
  /** prom-client's `getMetricsAsJSON()` of the worker's registry, for AggregatorRegistry; empty when not asked. */
  metrics: object[];
  /** In flight per site, version and upstream (proxy/in-flight.ts). */
  traffic: UpstreamTraffic[];
  /** The worker's resident memory. */
  rssBytes: number;
  /** The upstreams the worker's health checks or connect failures took out of rotation. */
  unavailable: UnavailableUpstream[];
}

export type WorkerMessage =
  | { type: 'hello' }
  | { type: 'serving'; http: AddressInfo; https: AddressInfo; routesGeneration: number }
  | { type: 'fatal'; message: string }
  | { type: 'table-applied'; routesGeneration: number }
  | { type: 'certificate-request'; host: string }
  | ({ type: 'status-reply'; id: number } & WorkerStatus);

/** Messages of this protocol carry `proximation` so that prom-client's or Node's own are told apart. */
export const PROTOCOL = 'proximation/1';

export type Envelope<M> = { protocol: typeof PROTOCOL } & M;

export function envelope<M>(message: M): Envelope<M> {
  return { protocol: PROTOCOL, ...message };
}

export function isEnvelope<M>(value: unknown): value is Envelope<M> {
  return typeof value === 'object' && value !== null && (value as { protocol?: unknown }).protocol === PROTOCOL;
}
