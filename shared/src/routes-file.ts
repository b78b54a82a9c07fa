/**
 * The routing table in shared storage (storage.ts; on the file backend the file `routes.json` of today).
 * `readRoutingTable` returns the validated table (an empty one, generation 0, when the key does not
 * exist) or throws what `parseRoutingTable` throws.
 *
 * `updateRoutingTable` is the only way to change it: it holds the lease lock `<key>.lock` while it
 * re-reads the table, applies `change` and, only if `change` returned a different table, validates it
 * and writes it atomically (mode 0644 on files) as a write fenced by that lock. So concurrent updates
 * from any number of processes and machines are serialised and none is lost. An invalid stored table
 * makes the update fail with its validation error and stays untouched; so does a `change` that throws.
 * Each write is one generation step, however many operations `change` composed (each operation counts
 * one). If the lease was lost before the write, nothing is written and ERR_LOCK_LOST is thrown:
 * retrying is safe. With `create: false` a missing table is not created: ERR_ROUTES_NOT_FOUND, checked
 * before the lock is taken (so not even the lock file or a directory is made) and again under it.
 *
 * `readRoutingTableFile` / `updateRoutingTableFile` are the same on the file `path` (its directory as
 * a file backend), with the lock file `${path}.lock` as before. A `RoutesLocation` names a table as
 * its storage and key, so the records kept beside it (change-log.ts, fleet-storage.ts) find their keys
 * from it on either backend; `routesFileLocation` is the one of a file.
 *
 * The last good copy (`lastGoodCopyPath`, `routes.json.last-good` beside the file) holds the newest valid
 * table anyone wrote or read, so an operator whose file was broken by hand can copy it back: every
 * update writes it (atomically, under the lock, after the table itself), and a proxy that accepts a table
 * written by other means (an editor) writes it with `keepLastGoodCopy`, which never replaces a copy of a
 * newer generation. It is never read by the proxies: restoring it is the operator's decision.
 */
import { basename, dirname } from 'node:path';
import { ProximationError } from './errors.js';
import { readFileIfExists, writeFileAtomic } from './file-storage.js';
import type { LockOptions } from './lock.js';
import { emptyRoutingTable, parseRoutingTable, serializeRoutingTable, validateRoutingTable } from './routing-table.js';
import type { RoutingTable } from './routing-table.js';
import { FileStorage, describeKey } from './storage/file-backend.js';
import type { Storage } from './storage/storage.js';
import { withStorageLock } from './storage/storage.js';

/** Where a routing table is: its storage and its key there. */
export interface RoutesLocation {
  readonly storage: Storage;
  readonly key: string;
}

/** The table in the file `path`: a file backend on its directory, the file's name as key. */
export function routesFileLocation(path: string): RoutesLocation {
  return { storage: new FileStorage(dirname(path)), key: basename(path) };
}

export async function readRoutingTable(storage: Storage, key: string): Promise<RoutingTable> {
  const content = await storage.read(key);
  return content === undefined ? emptyRoutingTable() : parseRoutingTable(content.toString('utf8'), describeKey(storage, key));
}

export function lastGoodCopyPath(path: string): string {
  return `${path}.last-good`;
}

/** The generation of the last good copy beside `path`; undefined when there is none (or it is not a valid table). */
export async function lastGoodCopyGeneration(path: string): Promise<number | undefined> {
  const copy = lastGoodCopyPath(path);
  const content = await readFileIfExists(copy);
  if (content === undefined) return undefined;
  try {
    return parseRoutingTable(content.toString('utf8'), copy).generation;
  } catch {
    return undefined;
  }
}

/**
 * Writes `table` (valid, as read from `path`) as the last good copy unless the copy already holds this
 * or a newer generation; resolves to whether it wrote.
 */
export async function keepLastGoodCopy(path: string, table: RoutingTable): Promise<boolean> {
  const held = await lastGoodCopyGeneration(path);
  if (held !== undefined && held >= table.generation) return false;
  await writeFileAtomic(lastGoodCopyPath(path), serializeRoutingTable(table), { mode: 0o644 });
  return true;
}

export interface RoutingTableUpdate {
  /** The table now stored (the unchanged one when `changed` is false). */
  table: RoutingTable;
  changed: boolean;
  /** True when the file did not exist and this update created it. */
  created?: boolean;
}

export interface RoutingTableUpdateOptions extends LockOptions {
  /** false: a missing file is an error (ERR_ROUTES_NOT_FOUND, naming `origin`) instead of an empty table. Default true. */
  create?: boolean;
  /** Where `path` came from, for that error, such as `from --routes`. */
  origin?: string;
}

/**
 * ERR_ROUTES_NOT_FOUND for the table `key` in `storage`, whose place came from `origin` (such as
 * `from --routes`); `creator` says what makes one.
 */
export function routesNotFound(storage: Storage, key: string, origin: string | undefined, creator: string): ProximationError {
  const check =
    storage instanceof FileStorage
      ? 'check the path (it is normally <letsencrypt dir>/proximation/routes.json)'
      : "check the key prefix (PROXIMATION_STORAGE_PREFIX) and the database in the URL against the proxies' settings";
  return new ProximationError('ERR_ROUTES_NOT_FOUND', `No routing table at ${describeKey(storage, key)}${origin === undefined ? '' : ` (${origin})`}: ${check}; ${creator}.`);
}

export async function updateRoutingTable(
  storage: Storage,
  key: string,
  change: (table: RoutingTable) => RoutingTable,
  options: RoutingTableUpdateOptions = {},
): Promise<RoutingTableUpdate> {
  const { create = true, origin, ...lockOptions } = options;
  const name = describeKey(storage, key);
  const refuse = (): ProximationError => routesNotFound(storage, key, origin, 'only "deploy site add" creates a new one');
  if (!create && (await storage.read(key)) === undefined) throw refuse();
  return withStorageLock(
    storage,
    `${key}.lock`,
    async (lock) => {
      const content = await storage.read(key);
      if (content === undefined && !create) throw refuse();
      const current = content === undefined ? emptyRoutingTable() : parseRoutingTable(content.toString('utf8'), name);
      const changed = change(current);
      if (changed === current) return { table: current, changed: false, created: false };
      const next = { ...changed, generation: current.generation + 1 };
      const text = serializeRoutingTable(validateRoutingTable(next, `the new routing table for ${name}`));
      await storage.write(key, text, { mode: 0o644, fence: lock });
      await storage.write(lastGoodCopyPath(key), text, { mode: 0o644, fence: lock });
      return { table: next, changed: true, created: content === undefined };
    },
    lockOptions,
  );
}

export async function readRoutingTableFile(path: string): Promise<RoutingTable> {
  const { storage, key } = routesFileLocation(path);
  return readRoutingTable(storage, key);
}

export async function updateRoutingTableFile(
  path: string,
  change: (table: RoutingTable) => RoutingTable,
  options: RoutingTableUpdateOptions = {},
): Promise<RoutingTableUpdate> {
  const { storage, key } = routesFileLocation(path);
  return updateRoutingTable(storage, key, change, options);
}
