/**
 * The DNS records an order has put up and not yet removed, kept in the shared directory so that a
 * process killed between present and cleanup does not leave them behind for ever: the next order for
 * the same lineage (which holds that lineage's lock, so the writer is gone or has lost its lease) removes
 * them first, with the provider recorded beside each.
 *
 *   <letsencrypt dir>/proximation/dns01/<lineage>/<sha256 of name and value>.json
 *     { "name", "domain", "value", "provider": [[renewal param, value]...] }
 *
 * `add` is written (atomically, durably) before the record is presented; `remove` after its cleanup.
 * `list` answers what is left for a lineage; an entry that does not parse is reported as such and
 * skipped (it is removed with the others, as it cannot be acted on). Lineage names are checked as the
 * certificate store checks them before they become paths. File-system errors pass through
 * (ERR_FILE_WRITE, system errors).
 */
import { createHash } from 'node:crypto';
import { readdir, rm } from 'node:fs/promises';
import path from 'node:path';
import { isErrnoCode, readFileIfExists, writeFileAtomic } from '@proximation/shared';
import type { ConfValue } from '../renewal-conf.js';
import type { TxtRecord } from './provider.js';

export interface JournalEntry {
  file: string;
  record: TxtRecord;
  provider: [string, ConfValue][];
}

export function dnsJournalDir(letsencryptDir: string): string {
  return path.join(letsencryptDir, 'proximation', 'dns01');
}

export class DnsJournal {
  /** `checkLineage` throws for a name that may not become a path (CertStore.liveDir's check). */
  constructor(
    readonly dir: string,
    private readonly checkLineage: (lineage: string) => void,
  ) {}

  private lineageDir(lineage: string): string {
    this.checkLineage(lineage);
    return path.join(this.dir, lineage);
  }

  async add(lineage: string, record: TxtRecord, provider: [string, ConfValue][]): Promise<string> {
    const id = createHash('sha256').update(`${record.name}\n${record.value}`).digest('hex');
    const file = path.join(this.lineageDir(lineage), `${id}.json`);
    await writeFileAtomic(file, `${JSON.stringify({ ...record, provider })}\n`, { mode: 0o644 });
    return file;
  }

  async remove(file: string): Promise<void> {
    await rm(file, { force: true });
  }

  async list(lineage: string): Promise<{ entries: JournalEntry[]; unreadable: string[] }> {
    const dir = this.lineageDir(lineage);
    let names: string[];
    try {
      names = await readdir(dir);
    } catch (err) {
      if (isErrnoCode(err, 'ENOENT')) return { entries: [], unreadable: [] };
      throw err;
    }
    const entries: JournalEntry[] = [];
    const unreadable: string[] = [];
    for (const name of names.filter((n) => n.endsWith('.json'))) {
      const file = path.join(dir, name);
      const parsed = parseEntry((await readFileIfExists(file))?.toString('utf8'));
      if (parsed === undefined) unreadable.push(file);
      else entries.push({ file, ...parsed });
    }
    return { entries, unreadable };
  }
}

function parseEntry(text: string | undefined): Omit<JournalEntry, 'file'> | undefined {
  if (text === undefined) return undefined;
  try {
    const raw = JSON.parse(text) as Record<string, unknown>;
    const { name, domain, value, provider } = raw;
    if (typeof name !== 'string' || typeof domain !== 'string' || typeof value !== 'string' || !Array.isArray(provider)) return undefined;
    const params = provider.filter(
      (p): p is [string, ConfValue] => Array.isArray(p) && p.length === 2 && typeof p[0] === 'string' && (typeof p[1] === 'string' || Array.isArray(p[1])),
    );
    return { record: { name, domain, value }, provider: params };
  } catch {
    return undefined;
  }
}
