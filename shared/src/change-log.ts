/**
 * The recent routing-table changes, beside the routes file as `<routes file>.changes.json`: for each
 * generation written, when, which operation on which site, and who asked (the admin API caller's
 * address and user agent, and the user and host a `deploy` command names). It is what the status page
 * lists under "recent changes"; the routing table stays the only source of truth.
 *
 * `appendChangeLogEntry` takes its own lease lock (`<log>.lock`, lock.ts), re-reads the log, adds the
 * entry, keeps the newest MAX_CHANGE_LOG_ENTRIES by generation and writes atomically. It runs after the
 * table write, so a crash between the two loses a log line, never a table change; `recordRoutingChange`
 * builds the entry for a change that made `table` (for a rollback, the version it went back to) and
 * appends it. Both pass on lock and file-system errors. `readChangeLog`
 * returns the entries newest first; a missing or unreadable log reads as empty (losing the log only
 * loses history). Recorded text is cut to MAX_ACTOR_TEXT characters; callers show it escaped.
 */
import * as z from 'zod';
import { readFileIfExists, writeFileAtomic } from './file-storage.js';
import { withLock } from './lock.js';
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
    via: z.enum(['admin-api', 'status-page', 'file']),
  }),
});

export type ChangeLogEntry = z.infer<typeof entrySchema>;

const logSchema = z.object({ entries: z.array(z.unknown()) });

export function changeLogPath(routesPath: string): string {
  return `${routesPath}.changes.json`;
}

export async function readChangeLog(routesPath: string): Promise<ChangeLogEntry[]> {
  let raw: unknown;
  try {
    const content = await readFileIfExists(changeLogPath(routesPath));
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

export async function appendChangeLogEntry(routesPath: string, entry: ChangeLogEntry): Promise<void> {
  const path = changeLogPath(routesPath);
  await withLock(`${path}.lock`, async () => {
    const entries = [entrySchema.parse(entry), ...(await readChangeLog(routesPath))]
      .sort((a, b) => b.generation - a.generation)
      .slice(0, MAX_CHANGE_LOG_ENTRIES);
    await writeFileAtomic(path, `${JSON.stringify({ entries }, null, 2)}\n`, { mode: 0o644 });
  });
}

export async function recordRoutingChange(routesPath: string, table: RoutingTable, change: RoutingTableChange, by: ChangeLogEntry['by']): Promise<void> {
  const version = 'version' in change ? change.version : table.sites.find((site) => site.name === change.site)?.activeVersion;
  await appendChangeLogEntry(routesPath, { generation: table.generation, at: new Date().toISOString(), op: change.op, site: change.site, version: version ?? undefined, by });
}
