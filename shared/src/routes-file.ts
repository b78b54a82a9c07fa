/**
 * The routing table file on the shared directory. `readRoutingTableFile` returns the validated table (an
 * empty one, generation 0, when the file does not exist) or throws what `parseRoutingTable` throws.
 *
 * `updateRoutingTableFile` is the only way to change the file: it holds the lease lock `${path}.lock`
 * (see lock.ts) while it re-reads the file, applies `change` and, only if `change` returned a different
 * table, validates it and writes it atomically (mode 0644). So concurrent updates from any number of
 * processes and machines are serialised and none is lost. An invalid file on disk makes the update
 * fail with its validation error and stays untouched; so does a `change` that throws. Each write is one
 * generation step, however many operations `change` composed (each operation counts one). If the
 * lease was lost before the write (see `Lock.lost`), nothing is written and ERR_LOCK_LOST is thrown:
 * retrying is safe.
 */
import { ProximationError } from './errors.js';
import { readFileIfExists, writeFileAtomic } from './file-storage.js';
import { withLock } from './lock.js';
import type { LockOptions } from './lock.js';
import { emptyRoutingTable, parseRoutingTable, serializeRoutingTable, validateRoutingTable } from './routing-table.js';
import type { RoutingTable } from './routing-table.js';

export async function readRoutingTableFile(path: string): Promise<RoutingTable> {
  const content = await readFileIfExists(path);
  return content === undefined ? emptyRoutingTable() : parseRoutingTable(content.toString('utf8'), path);
}

export interface RoutingTableUpdate {
  /** The table now on disk (the unchanged one when `changed` is false). */
  table: RoutingTable;
  changed: boolean;
}

export async function updateRoutingTableFile(
  path: string,
  change: (table: RoutingTable) => RoutingTable,
  options?: LockOptions,
): Promise<RoutingTableUpdate> {
  return withLock(
    `${path}.lock`,
    async (lock) => {
      const current = await readRoutingTableFile(path);
      const changed = change(current);
      if (changed === current) return { table: current, changed: false };
      const next = { ...changed, generation: current.generation + 1 };
      const text = serializeRoutingTable(validateRoutingTable(next, `the new routing table for ${path}`));
      if (lock.lost) {
        throw new ProximationError(
          'ERR_LOCK_LOST',
          `Lost the lock ${lock.path} before writing ${path} (this process stalled past its lease, so another may have taken over); nothing was written. Retry.`,
        );
      }
      await writeFileAtomic(path, text, { mode: 0o644 });
      return { table: next, changed: true };
    },
    options,
  );
}
