/**
 * The fleet's small, often-written records, kept beside the routing table and never in it: members'
 * lease renewals (members.ts) and instances' heartbeats (what each proxy serves and has in flight).
 * This module is the only place that knows how they are stored; callers use `FleetStorage` alone, so
 * another backend (a key-value store) can replace the files.
 *
 * The contract, whatever the backend:
 * - `putLease` / `putInstance` replace the record atomically: a reader sees the previous record or the
 *   new one, never a mix. There is one writer per record (the member's own `deploy run`, the instance's
 *   primary), so no lock is taken; rules about who may write a record (identity) are the caller's.
 * - `getLease` reads one record now, bypassing any cache (undefined when there is none).
 * - `readLeases` / `readInstances` list every record. A reader sees a change made by another machine
 *   within `REREAD_MS` plus the storage's own visibility delay, and usually at its next call: a record
 *   is re-read when its file's size, inode or mtime changed, or when it was last read `REREAD_MS` ago
 *   (NFS attribute caches can hide a change from stat for that long). So a call costs one directory
 *   listing and one stat per record, and reads only what changed: re-reads stay bounded by the
 *   renewal rate, not the poll rate.
 * - Records that are not JSON of this format (corrupt, foreign, from a newer version without the
 *   fields read here) are left out and reported in `problems`, each once per content seen, naming the
 *   file and what is wrong; they never make a call fail. Temp files of writes in progress are skipped.
 * - `remove*` deletes a record; a missing one is no error.
 * I/O failures other than a missing directory throw ProximationError ERR_FILE_READ / ERR_FILE_WRITE.
 *
 * File layout: `<dir>/leases/<key>.json` and `<dir>/instances/<key>.json`, where `<dir>` is the
 * directory of routes.json (`<letsencrypt dir>/proximation`) and `<key>` a readable prefix of the
 * record's name plus a hash of it (names hold `/` and `:`: task ARNs, URLs).
 */
import { createHash } from 'node:crypto';
import { readdir, stat, unlink } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import * as z from 'zod';
import { ProximationError, errorMessage, isErrnoCode } from './errors.js';
import { readFileIfExists, writeFileAtomic } from './file-storage.js';

export const LEASE_KIND = 'proximation/lease';
export const INSTANCE_KIND = 'proximation/instance';
/** A record is read again after this long even when stat says it did not change. */
export const REREAD_MS = 5_000;

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

export interface FleetStorage {
  putLease(record: LeaseRecord): Promise<void>;
  getLease(site: string, version: string, upstream: string): Promise<LeaseRecord | undefined>;
  removeLease(site: string, version: string, upstream: string): Promise<void>;
  readLeases(): Promise<FleetRecords<LeaseRecord>>;
  putInstance(record: InstanceRecord): Promise<void>;
  removeInstance(id: string): Promise<void>;
  readInstances(): Promise<FleetRecords<InstanceRecord>>;
}

/** The directory the fleet records live in for the routing table at `routesPath`. */
export function fleetDirOf(routesPath: string): string {
  return dirname(routesPath);
}

function fileKey(name: string): string {
  const readable = name.replace(/[^A-Za-z0-9._-]+/g, '_').slice(-60);
  return `${readable}-${createHash('sha256').update(name).digest('hex').slice(0, 16)}.json`;
}

const leaseName = (site: string, version: string, upstream: string): string => fileKey(`${site}/${version}/${upstream}`);

interface Cached<R> {
  readonly signature: string;
  readonly readAt: number;
  readonly record: R | undefined;
  readonly problem: string | undefined;
}

/** One directory of records, listed with stat and re-read only as the contract says. */
class RecordDirectory<R> {
  private readonly cache = new Map<string, Cached<R>>();

  constructor(
    readonly dir: string,
    private readonly parse: (value: unknown) => R | string,
  ) {}

  async read(): Promise<FleetRecords<R>> {
    let names: string[];
    try {
      names = await readdir(this.dir);
    } catch (err) {
      if (isErrnoCode(err, 'ENOENT')) return { records: [], problems: [] };
      throw new ProximationError('ERR_FILE_READ', `Could not list ${this.dir}: ${errorMessage(err)}. Check its permissions.`, { cause: err });
    }
    const now = Date.now();
    const records: R[] = [];
    const problems: string[] = [];
    const present = new Set<string>();
    for (const name of names) {
      if (name.startsWith('.') || !name.endsWith('.json')) continue;
      present.add(name);
      const path = join(this.dir, name);
      const info = await stat(path).catch(() => undefined);
      if (info === undefined) continue;
      const signature = `${info.ino}:${info.size}:${info.mtimeMs}`;
      const cached = this.cache.get(name);
      let entry = cached;
      if (cached === undefined || cached.signature !== signature || now - cached.readAt >= REREAD_MS) {
        entry = await this.load(path, signature, now);
        this.cache.set(name, entry);
        if (entry.problem !== undefined && entry.problem !== cached?.problem) problems.push(`${path}: ${entry.problem}`);
      }
      if (entry?.record !== undefined) records.push(entry.record);
    }
    for (const name of this.cache.keys()) if (!present.has(name)) this.cache.delete(name);
    return { records, problems };
  }

  /** One record read now, past the cache; undefined when missing or not a valid record. */
  async readNow(name: string): Promise<R | undefined> {
    return (await this.load(join(this.dir, name), '', Date.now())).record;
  }

  private async load(path: string, signature: string, now: number): Promise<Cached<R>> {
    const content = await readFileIfExists(path);
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

async function removeFile(path: string): Promise<void> {
  try {
    await unlink(path);
  } catch (err) {
    if (isErrnoCode(err, 'ENOENT')) return;
    throw new ProximationError('ERR_FILE_WRITE', `Could not remove ${path}: ${errorMessage(err)}.`, { cause: err });
  }
}

const json = (kind: string, record: object): string => `${JSON.stringify({ kind, ...record })}\n`;

/** Fleet records as files in `dir` (see the module header). */
export function fileFleetStorage(dir: string): FleetStorage {
  const leases = new RecordDirectory(join(dir, 'leases'), parser(leaseSchema, LEASE_KIND));
  const instances = new RecordDirectory(join(dir, 'instances'), parser(instanceSchema, INSTANCE_KIND));
  return {
    putLease: (record) => writeFileAtomic(join(leases.dir, leaseName(record.site, record.version, record.upstream)), json(LEASE_KIND, record)),
    getLease: (site, version, upstream) => leases.readNow(leaseName(site, version, upstream)),
    removeLease: (site, version, upstream) => removeFile(join(leases.dir, leaseName(site, version, upstream))),
    readLeases: () => leases.read(),
    putInstance: (record) => writeFileAtomic(join(instances.dir, fileKey(record.id)), json(INSTANCE_KIND, record)),
    removeInstance: (id) => removeFile(join(instances.dir, fileKey(id))),
    readInstances: () => instances.read(),
  };
}
