/**
 * The fleet's small, often-written records, kept beside the routing table and never in it: members'
 * lease renewals (members.ts) and instances' heartbeats (what each proxy serves and has in flight).
 * This module is the only place that knows how they are stored; callers use `FleetStorage` alone. They
 * live in the routing table's storage (storage.ts: a directory or Redis), found from its location
 * (`fleetStorageOf`).
 *
 * The contract, whatever the backend (shared/test/fleet-storage.test.ts runs it on both):
 * - `putLease` / `putInstance` replace the record atomically: a reader sees the previous record or the
 *   new one, never a mix. There is one writer per record (the member's own `deploy run`, the instance's
 *   primary), so no lock is taken; rules about who may write a record (identity) are the caller's.
 * - `getLease` reads one record now, bypassing any cache (undefined when there is none).
 * - `readLeases` / `readInstances` list every record. On files a reader sees a change made by another
 *   machine within `REREAD_MS` plus the storage's own visibility delay, and usually at its next call: a
 *   record is re-read when its file's size, inode or mtime changed, or when it was last read `REREAD_MS`
 *   ago (NFS attribute caches can hide a change from stat for that long). So a call costs one directory
 *   listing and one stat per record, and reads only what changed: re-reads stay bounded by the renewal
 *   rate, not the poll rate. On Redis every call lists and reads every record (one round trip each,
 *   sent together), so a change is seen at the next call.
 * - `readLeases({ followRenewals: { pollMs } })` is for a reader that only needs to see each renewal
 *   before the lease it extends runs out (the proxy's lease watcher, which expires members by time): a
 *   record last read with more than `renewalMargin` of its lease left is returned as last read without
 *   looking at it (no stat, no read, no round trip); the others as above. With renewals every third of
 *   the lease (`deploy run`), each live record is then read about once every two thirds of a lease, not
 *   stat'ed at every poll and re-read every REREAD_MS: at 200 members and 30 s leases, 10 reads a second
 *   in place of 200 stats and 40-60 reads. A renewal made later than `renewalMargin` before expiry may
 *   be seen only after the old lease ran out (at the next poll). New records are read at once.
 * - Records that are not JSON of this format (corrupt, foreign, from a newer version without the
 *   fields read here) are left out and reported in `problems`, each once per content seen, naming the
 *   file (or key) and what is wrong; they never make a call fail. Temp files of writes in progress are
 *   skipped.
 * - `remove*` deletes a record; a missing one is no error.
 * - Expiry: every record carries its own time (a lease's `renewedAt` + `leaseMs`, a heartbeat's
 *   `writtenAt` + HEARTBEAT_PERIODS_TO_LIVE `periodMs`), by which readers judge it on both backends. On
 *   Redis the record is also a key with expiry (`ttlMs`, storage.ts) of twice that, so the records of
 *   members and instances long gone vanish by themselves, never before every reader (with clocks within
 *   one lease or heartbeat period of each other) has stopped counting them. Files stay until removed,
 *   as before.
 * Failures throw what the storage throws (ERR_FILE_READ / ERR_FILE_WRITE, ERR_STORAGE_UNAVAILABLE).
 *
 * Layout: `<dir>/leases/<key>.json` and `<dir>/instances/<key>.json`, where `<dir>` is the folder of the
 * routing table's key (on files the directory of routes.json, `<letsencrypt dir>/proximation`; on Redis
 * `proximation/`) and `<key>` a readable prefix of the record's name plus a hash of it (names hold `/`
 * and `:`: task ARNs, URLs).
 */
import { createHash } from 'node:crypto';
import { stat } from 'node:fs/promises';
import { posix } from 'node:path';
import * as z from 'zod';
import type { RoutesLocation } from './routes-file.js';
import { FileStorage, describeKey } from './storage/file-backend.js';
import type { Storage } from './storage/storage.js';

export const LEASE_KIND = 'proximation/lease';
export const INSTANCE_KIND = 'proximation/instance';
/** An instance whose heartbeat was not rewritten for this many of its periods has left the fleet. */
export const HEARTBEAT_PERIODS_TO_LIVE = 3;
/** A record's key expires (on Redis) this many times later than readers stop counting it. */
const EXPIRY_MARGIN = 2;
/** A record is read again after this long even when stat says it did not change. */
export const REREAD_MS = 5_000;

/**
 * How long before a lease runs out a follower of renewals looks at its record again: a sixth of the
 * lease (half a renewal period of `deploy run`, so the renewal made a third before expiry has long
 * landed), and at least three polls (NFS visibility, a late poll).
 */
export function renewalMargin(leaseMs: number, pollMs: number): number {
  return Math.max(leaseMs / 6, 3 * pollMs);
}

const isoDate = z.iso.datetime();

const leaseSchema = z.object({
  kind: z.literal(LEASE_KIND),
  site: z.string().min(1),
  version: z.string().min(1),
  upstream: z.string().min(1),
  identity: z.string().min(1),
  leaseMs: z.int().positive(),
  renewedAt: isoDate,
});
export type LeaseRecord = Omit<z.output<typeof leaseSchema>, 'kind'>;

const count = z.int().min(0);
const trafficSchema = z.object({
  site: z.string(),
  version: z.string(),
  upstream: z.string(),
  inFlight: count,
  websockets: count,
  lastRequestAt: isoDate.optional(),
});
export type UpstreamTraffic = z.output<typeof trafficSchema>;

const certificateSchema = z.object({
  name: z.string(),
  notAfter: isoDate.nullable(),
  state: z.enum(['valid', 'missing', 'error']),
  error: z.string().optional(),
});
export type CertificateState = z.output<typeof certificateSchema>;

const instanceSchema = z.object({
  kind: z.literal(INSTANCE_KIND),
  id: z.string().min(1),
  host: z.string(),
  pid: z.int(),
  addresses: z.array(z.string()),
  startedAt: isoDate,
  writtenAt: isoDate,
  /** How often the instance writes its record; it is dropped from the fleet after 3 periods without one. */
  periodMs: z.int().positive(),
  routesGeneration: z.int(),
  workers: count,
  certificates: z.array(certificateSchema),
  traffic: z.array(trafficSchema),
  // Added after the first release: optional, so records of older instances still read.
  /** Requests answered per second over the instance's last metrics interval, all sites summed. */
  requestsPerSecond: z.number().min(0).optional(),
  /** Of those, responses with a 5xx status. */
  errorsPerSecond: z.number().min(0).optional(),
  /** Resident memory of the instance's processes (the primary and its workers), summed. */
  rssBytes: count.optional(),
});
export type InstanceRecord = Omit<z.output<typeof instanceSchema>, 'kind'>;

export interface FleetRecords<R> {
  readonly records: readonly R[];
  /** Files left out, each reported once per content: "<path>: <what is wrong>". */
  readonly problems: readonly string[];
}

export interface LeaseReadOptions {
  /** Look only at records whose lease is near its end (see the module header); `pollMs`: how often the caller reads. */
  readonly followRenewals?: { readonly pollMs: number };
}

export interface FleetStorage {
  putLease(record: LeaseRecord): Promise<void>;
  getLease(site: string, version: string, upstream: string): Promise<LeaseRecord | undefined>;
  removeLease(site: string, version: string, upstream: string): Promise<void>;
  readLeases(options?: LeaseReadOptions): Promise<FleetRecords<LeaseRecord>>;
  putInstance(record: InstanceRecord): Promise<void>;
  removeInstance(id: string): Promise<void>;
  readInstances(): Promise<FleetRecords<InstanceRecord>>;
}

function recordName(name: string): string {
  const readable = name.replace(/[^A-Za-z0-9._-]+/g, '_').slice(-60);
  return `${readable}-${createHash('sha256').update(name).digest('hex').slice(0, 16)}.json`;
}

const leaseName = (site: string, version: string, upstream: string): string => recordName(`${site}/${version}/${upstream}`);

interface Cached<R> {
  readonly signature: string | undefined;
  readonly readAt: number;
  readonly record: R | undefined;
  readonly problem: string | undefined;
}

/** One folder of records in a storage, listed and re-read only as the contract says. */
class RecordFolder<R> {
  private readonly cache = new Map<string, Cached<R>>();

  constructor(
    private readonly storage: Storage,
    readonly prefix: string,
    private readonly parse: (value: unknown) => R | string,
  ) {}

  key(name: string): string {
    return `${this.prefix}/${name}`;
  }

  /** @param settled a record last read as this one, now: returned as read, not looked at again */
  async read(settled?: (record: R, now: number) => boolean): Promise<FleetRecords<R>> {
    const keys = (await this.storage.list(this.prefix)).filter((key) => key.endsWith('.json'));
    const now = Date.now();
    const problems: string[] = [];
    // All at once: on Redis each is a round trip, sent together on the one connection.
    const entries = await Promise.all(
      keys.map(async (key) => {
        const cached = this.cache.get(key);
        if (cached?.record !== undefined && settled?.(cached.record, now) === true) return cached;
        const signature = await this.signature(key);
        if (signature === null) return undefined;
        if (cached !== undefined && signature !== undefined && cached.signature === signature && now - cached.readAt < REREAD_MS) return cached;
        const entry = await this.load(key, signature, now);
        this.cache.set(key, entry);
        if (entry.problem !== undefined && entry.problem !== cached?.problem) problems.push(`${describeKey(this.storage, key)}: ${entry.problem}`);
        return entry;
      }),
    );
    const present = new Set(keys);
    for (const key of this.cache.keys()) if (!present.has(key)) this.cache.delete(key);
    return { records: entries.flatMap((entry) => (entry?.record === undefined ? [] : [entry.record])), problems: problems.sort() };
  }

  /**
   * What tells that a file changed without reading it (inode, size, mtime); null when it is gone. Other
   * backends have no such cheap check (undefined): their records are read at every call, one round
   * trip each.
   */
  private async signature(key: string): Promise<string | undefined | null> {
    if (!(this.storage instanceof FileStorage)) return undefined;
    const info = await stat(this.storage.pathOf(key)).catch(() => undefined);
    return info === undefined ? null : `${info.ino}:${info.size}:${info.mtimeMs}`;
  }

  /** One record read now, past the cache; undefined when missing or not a valid record. */
  async readNow(name: string): Promise<R | undefined> {
    return (await this.load(this.key(name), undefined, Date.now())).record;
  }

  private async load(key: string, signature: string | undefined, now: number): Promise<Cached<R>> {
    const content = await this.storage.read(key);
    if (content === undefined) return { signature, readAt: now, record: undefined, problem: undefined };
    let value: unknown;
    try {
      value = JSON.parse(content.toString('utf8'));
    } catch {
      return { signature, readAt: now, record: undefined, problem: 'not JSON; ignored' };
    }
    const parsed = this.parse(value);
    return typeof parsed === 'string' ? { signature, readAt: now, record: undefined, problem: parsed } : { signature, readAt: now, record: parsed, problem: undefined };
  }
}

function parser<S extends z.ZodType<{ kind: string }>>(schema: S, kind: string): (value: unknown) => Omit<z.output<S>, 'kind'> | string {
  return (value) => {
    if (typeof value !== 'object' || value === null || (value as { kind?: unknown }).kind !== kind) return `not a ${kind} record; ignored`;
    const result = schema.safeParse(value);
    if (!result.success) {
      const issue = result.error.issues[0];
      return `malformed ${kind} record (${issue === undefined ? 'invalid' : `${issue.path.join('.') || 'record'}: ${issue.message}`}); ignored`;
    }
    const { kind: _kind, ...record } = result.data as { kind: string };
    return record as Omit<z.output<S>, 'kind'>;
  };
}

const json = (kind: string, record: object): string => `${JSON.stringify({ kind, ...record })}\n`;

/** The fleet records kept beside the routing table at `routes` (see the module header). */
export function fleetStorageOf(routes: RoutesLocation): FleetStorage {
  const dir = posix.dirname(routes.key);
  const folder = (name: string): string => (dir === '.' ? name : `${dir}/${name}`);
  const { storage } = routes;
  const leases = new RecordFolder(storage, folder('leases'), parser(leaseSchema, LEASE_KIND));
  const instances = new RecordFolder(storage, folder('instances'), parser(instanceSchema, INSTANCE_KIND));
  return {
    putLease: (record) =>
      storage.write(leases.key(leaseName(record.site, record.version, record.upstream)), json(LEASE_KIND, record), { ttlMs: EXPIRY_MARGIN * record.leaseMs }),
    getLease: (site, version, upstream) => leases.readNow(leaseName(site, version, upstream)),
    removeLease: (site, version, upstream) => storage.delete(leases.key(leaseName(site, version, upstream))),
    readLeases: (options) => {
      const follow = options?.followRenewals;
      if (follow === undefined) return leases.read();
      return leases.read((record, now) => Date.parse(record.renewedAt) + record.leaseMs - renewalMargin(record.leaseMs, follow.pollMs) > now);
    },
    putInstance: (record) =>
      storage.write(instances.key(recordName(record.id)), json(INSTANCE_KIND, record), { ttlMs: EXPIRY_MARGIN * HEARTBEAT_PERIODS_TO_LIVE * record.periodMs }),
    removeInstance: (id) => storage.delete(instances.key(recordName(id))),
    readInstances: () => instances.read(),
  };
}

/** Fleet records as files in `dir` (the directory of routes.json). */
export function fileFleetStorage(dir: string): FleetStorage {
  return fleetStorageOf({ storage: new FileStorage(dir), key: 'routes.json' });
}
