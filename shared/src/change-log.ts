/**
 * The recent routing-table changes, beside the routing table in its storage as the key
 * `<routes key>.changes.json` (on files `<routes file>.changes.json`, as before): for each
 * generation written, when, which operation on which site, and who asked (the admin API caller's
 * address and user agent, and the user and host a `deploy` command names). It is what the status page
 * lists under "recent changes"; the routing table stays the only source of truth.
 *
 * `appendChangeLogEntry` takes its own lock (`<log>.lock`, the storage's lock), re-reads the log, adds
 * the entry, keeps the newest MAX_CHANGE_LOG_ENTRIES by generation and writes atomically, fenced by
 * that lock. It runs after the
 * table write, so a crash between the two loses a log line, never a table change; `recordRoutingChange`
 * builds the entry for a change that made `table` (for a rollback, the version it went back to) and
 * appends it. Both pass on lock and storage errors. `readChangeLog`
 * returns the entries newest first; a missing or unreadable log reads as empty (losing the log only
 * loses history). Recorded text is cut to MAX_ACTOR_TEXT characters; callers show it escaped.
 */
import * as z from 'zod';
import type { RoutesLocation } from './routes-file.js';
import { withStorageLock } from './storage/storage.js';
import type { RoutingTable, RoutingTableChange } from './routing-table.js';

export const MAX_CHANGE_LOG_ENTRIES = 200;
export const MAX_ACTOR_TEXT = 200;

const actorText = z.string().transform((text) => text.slice(0, MAX_ACTOR_TEXT));

const entrySchema = z.object({
  generation: z.int(),
  at: z.string(),
  op: z.string(),
  site: z.string().optional(),
  version: z.string().optional(),
  by: z.object({
    user: actorText.optional(),
    host: actorText.optional(),
    peer: actorText.optional(),
    userAgent: actorText.optional(),
    // 'file' and 'redis': deploy writing to the storage itself, on that backend.
    via: z.enum(['admin-api', 'status-page', 'file', 'redis']),
  }),
});

export type ChangeLogEntry = z.infer<typeof entrySchema>;

const logSchema = z.object({ entries: z.array(z.unknown()) });

/** The log's key beside the table's key. */
export function changeLogKey(routesKey: string): string {
  return `${routesKey}.changes.json`;
}

export async function readChangeLog(routes: RoutesLocation): Promise<ChangeLogEntry[]> {
  let raw: unknown;
  try {
    const content = await routes.storage.read(changeLogKey(routes.key));
    if (content === undefined) return [];
    raw = JSON.parse(content.toString('utf8'));
  } catch {
    return [];
  }
  const parsed = logSchema.safeParse(raw);
  if (!parsed.success) return [];
  return parsed.data.entries
    .flatMap((entry) => {
      const one = entrySchema.safeParse(entry);
      return one.success ? [one.data] : [];
    })
    .sort((a, b) => b.generation - a.generation);
}

export async function appendChangeLogEntry(routes: RoutesLocation, entry: ChangeLogEntry): Promise<void> {
  const key = changeLogKey(routes.key);
  await withStorageLock(routes.storage, `${key}.lock`, async (lock) => {
    const entries = [entrySchema.parse(entry), ...(await readChangeLog(routes))]
      .sort((a, b) => b.generation - a.generation)
      .slice(0, MAX_CHANGE_LOG_ENTRIES);
    await routes.storage.write(key, `${JSON.stringify({ entries }, null, 2)}\n`, { mode: 0o644, fence: lock });
  });
}

export async function recordRoutingChange(routes: RoutesLocation, table: RoutingTable, change: RoutingTableChange, by: ChangeLogEntry['by']): Promise<void> {
  const version = 'version' in change ? change.version : table.sites.find((site) => site.name === change.site)?.activeVersion;
  await appendChangeLogEntry(routes, { generation: table.generation, at: new Date().toISOString(), op: change.op, site: change.site, version: version ?? undefined, by });
}
