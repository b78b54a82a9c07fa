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
 * retrying is safe.
 *
 * `readRoutingTableFile` / `updateRoutingTableFile` are the same on the file `path` (its directory as
 * a file backend), with the lock file `${path}.lock` as before.
 */
import { basename, dirname } from 'node:path';
import type { LockOptions } from './lock.js';
import { emptyRoutingTable, parseRoutingTable, serializeRoutingTable, validateRoutingTable } from './routing-table.js';
import type { RoutingTable } from './routing-table.js';
import { FileStorage } from './storage/file-backend.js';
import type { Storage } from './storage/storage.js';
import { withStorageLock } from './storage/storage.js';

/** How messages name the table: the file's path, or the key in its backend. */
function describeTable(storage: Storage, key: string): string {
  return storage instanceof FileStorage ? storage.pathOf(key) : `${key} in ${storage.location}`;
}

export async function readRoutingTable(storage: Storage, key: string): Promise<RoutingTable> {
  const content = await storage.read(key);
  return content === undefined ? emptyRoutingTable() : parseRoutingTable(content.toString('utf8'), describeTable(storage, key));
}

export interface RoutingTableUpdate {
  /** The table now stored (the unchanged one when `changed` is false). */
  table: RoutingTable;
  changed: boolean;
}

export async function updateRoutingTable(
  storage: Storage,
  key: string,
  change: (table: RoutingTable) => RoutingTable,
  options?: LockOptions,
): Promise<RoutingTableUpdate> {
  return withStorageLock(
    storage,
    `${key}.lock`,
    async (lock) => {
      const current = await readRoutingTable(storage, key);
      const changed = change(current);
      if (changed === current) return { table: current, changed: false };
      const next = { ...changed, generation: current.generation + 1 };
      const text = serializeRoutingTable(validateRoutingTable(next, `the new routing table for ${describeTable(storage, key)}`));
      await storage.write(key, text, { mode: 0o644, fence: lock });
      return { table: next, changed: true };
    },
    options,
  );
}

function fileStorageOf(path: string): { storage: FileStorage; key: string } {
  return { storage: new FileStorage(dirname(path)), key: basename(path) };
}

export async function readRoutingTableFile(path: string): Promise<RoutingTable> {
  const { storage, key } = fileStorageOf(path);
  return readRoutingTable(storage, key);
}

export async function updateRoutingTableFile(
  path: string,
  change: (table: RoutingTable) => RoutingTable,
  options?: LockOptions,
): Promise<RoutingTableUpdate> {
  const { storage, key } = fileStorageOf(path);
  return updateRoutingTable(storage, key, change, options);
}
