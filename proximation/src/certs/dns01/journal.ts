/**
 * The DNS records an order has put up and not yet removed, kept in the shared storage so that a
 * process killed between present and cleanup does not leave them behind for ever: the next order for
 * the same lineage (which holds that lineage's lock, so the writer is gone or has lost its lease) removes
 * them first, with the provider recorded beside each.
 *
 *   proximation/dns01/<lineage>/<sha256 of name and value>.json   (on files: under the letsencrypt directory)
 *     { "name", "domain", "value", "provider": [[renewal param, value]...] }
 *
 * `add` is written (atomically, durably) before the record is presented and answers the entry's key;
 * `remove` after its cleanup. `list` answers what is left for a lineage; an entry that does not parse is
 * reported as such and skipped (it is removed with the others, as it cannot be acted on). Lineage names
 * are checked as the certificate store checks them before they become keys. The storage's errors pass
 * through (ERR_FILE_WRITE, ERR_STORAGE_UNAVAILABLE...).
 */
import { createHash } from 'node:crypto';
import type { Storage } from '@proximation/shared';
import type { ConfValue } from '../renewal-conf.js';
import type { TxtRecord } from './provider.js';

export interface JournalEntry {
  key: string;
  record: TxtRecord;
  provider: [string, ConfValue][];
}

export class DnsJournal {
  /** `checkLineage` throws for a name that may not become a key (CertStore.liveDir's check). */
  constructor(
    private readonly storage: Storage,
    private readonly checkLineage: (lineage: string) => void,
  ) {}

  private lineagePrefix(lineage: string): string {
    this.checkLineage(lineage);
    return `proximation/dns01/${lineage}`;
  }

  async add(lineage: string, record: TxtRecord, provider: [string, ConfValue][]): Promise<string> {
    const id = createHash('sha256').update(`${record.name}\n${record.value}`).digest('hex');
    const key = `${this.lineagePrefix(lineage)}/${id}.json`;
    await this.storage.write(key, `${JSON.stringify({ ...record, provider })}\n`, { mode: 0o644 });
    return key;
  }

  async remove(key: string): Promise<void> {
    await this.storage.delete(key);
  }

  async list(lineage: string): Promise<{ entries: JournalEntry[]; unreadable: string[] }> {
    const entries: JournalEntry[] = [];
    const unreadable: string[] = [];
    for (const key of (await this.storage.list(this.lineagePrefix(lineage))).filter((k) => k.endsWith('.json'))) {
      const parsed = parseEntry((await this.storage.read(key))?.toString('utf8'));
      if (parsed === undefined) unreadable.push(key);
      else entries.push({ key, ...parsed });
    }
    return { entries, unreadable };
  }
}

function parseEntry(text: string | undefined): Omit<JournalEntry, 'key'> | undefined {
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
