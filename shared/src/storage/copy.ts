/**
 * `copyStorage(from, to)`: every key of `from` into `to` (any backend to any other), for moving a fleet
 * between a shared directory and Redis. Idempotent: a key whose bytes already match is left alone, so a
 * second run copies nothing. Every written key is read back and compared (ERR_STORAGE_COPY_VERIFY
 * otherwise). Before writing anything it refuses (ERR_STORAGE_COPY_NEWER, nothing written) when the
 * routing table at `to` has a higher generation than the one at `from`: the target was changed after
 * the source and copying would lose versions. Lock keys (`*.lock`, lock.ts's `*.lock.stale-*`) are
 * never copied: a lease belongs to a running holder of the source. Private keys (`privkey*.pem`,
 * `private_key.json`, `*.key`) are written with mode 0600 on a file backend, everything else 0644.
 */
import { ProximationError } from '../errors.js';
import type { Storage } from './storage.js';

export const ROUTES_KEY = 'proximation/routes.json';

export interface CopyResult {
  copied: string[];
  unchanged: string[];
}

function isLockKey(key: string): boolean {
  return /\.lock($|\.stale-)/.test(key);
}

function isSecretKey(key: string): boolean {
  const name = key.slice(key.lastIndexOf('/') + 1);
  return /^privkey\d*\.pem$/.test(name) || name === 'private_key.json' || name.endsWith('.key');
}

function generationOf(content: Buffer | undefined): number | undefined {
  if (content === undefined) return undefined;
  try {
    const generation = (JSON.parse(content.toString('utf8')) as { generation?: unknown }).generation;
    return typeof generation === 'number' ? generation : undefined;
  } catch {
    return undefined;
  }
}

const PRIVATE_DIRECTORIES = /^(live|archive|accounts)\//;

export async function copyStorage(from: Storage, to: Storage, options: { prefixes?: readonly string[] } = {}): Promise<CopyResult> {
  const source = options.prefixes === undefined ? generationOf(await from.read(ROUTES_KEY)) : undefined;
  const target = options.prefixes === undefined ? generationOf(await to.read(ROUTES_KEY)) : undefined;
  if (target !== undefined && (source === undefined || target > source)) {
    throw new ProximationError(
      'ERR_STORAGE_COPY_NEWER',
      `The routing table in ${to.location} is at generation ${target}, newer than ${source === undefined ? 'none' : `generation ${source}`} in ${from.location}; nothing was copied. ` +
        'Copy the other way, or remove the target\'s table if it is really to be replaced.',
    );
  }
  const result: CopyResult = { copied: [], unchanged: [] };
  const keys = options.prefixes === undefined ? await from.list('') : (await Promise.all(options.prefixes.map((prefix) => keysAt(from, prefix)))).flat();
  const links: Array<[string, string]> = [];
  for (const key of keys) {
    if (isLockKey(key)) continue;
    const linkTarget = await from.readLink(key);
    if (linkTarget !== undefined) {
      links.push([key, linkTarget]);
      continue;
    }
    const content = await from.read(key);
    if (content === undefined) continue; // removed since it was listed
    const existing = await to.read(key);
    if (existing !== undefined && existing.equals(content)) {
      result.unchanged.push(key);
      continue;
    }
    await to.write(key, content, { mode: isSecretKey(key) ? 0o600 : 0o644, ...dirMode(key) });
    const written = await to.read(key);
    if (written === undefined || !written.equals(content)) throw verifyError(key, to);
    result.copied.push(key);
  }
  for (const [key, linkTarget] of links) {
    if ((await to.readLink(key)) === linkTarget) {
      result.unchanged.push(key);
      continue;
    }
    await to.link(key, linkTarget, dirMode(key));
    if ((await to.readLink(key)) !== linkTarget) throw verifyError(key, to);
    result.copied.push(key);
  }
  return result;
}

function dirMode(key: string): { dirMode?: number } {
  return PRIVATE_DIRECTORIES.test(key) ? { dirMode: 0o700 } : {};
}

function verifyError(key: string, to: Storage): ProximationError {
  return new ProximationError('ERR_STORAGE_COPY_VERIFY', `${key} read back from ${to.location} differs from what was written; the copy stopped there. Run it again.`);
}

/** The keys under `prefix`, and `prefix` itself when it is one. */
async function keysAt(from: Storage, prefix: string): Promise<string[]> {
  const under = await from.list(prefix);
  const itself = (await from.readLink(prefix)) !== undefined || (await from.read(prefix)) !== undefined;
  return itself ? [prefix, ...under] : under;
}
