/**
 * The file backend of storage.ts: a key is the path of the same name under `root`, so the directory is
 * exactly today's layout (certbot's live/ archive/ renewal/ accounts/, proximation/routes.json, the lock
 * files of lock.ts). Writes are file-storage.ts's atomic writes; locks are lock.ts's lease files; a
 * fenced write checks the holder's lease right before the rename (the best a directory allows).
 */
import { readdir, unlink } from 'node:fs/promises';
import { join, relative, sep } from 'node:path';
import { ProximationError, errorMessage, isErrnoCode } from '../errors.js';
import { readFileIfExists, writeFileAtomic } from '../file-storage.js';
import { acquireLock } from '../lock.js';
import type { Lock } from '../lock.js';
import { checkStorageKey, checkStoragePrefix, lockLostError } from './storage.js';
import type { Storage, StorageLock, StorageLockOptions, StorageWriteOptions } from './storage.js';

export class FileStorage implements Storage {
  readonly location: string;
  readonly #root: string;

  constructor(root: string) {
    this.#root = root;
    this.location = root;
  }

  /** The file that holds `key`. */
  pathOf(key: string): string {
    return join(this.#root, checkStorageKey(key));
  }

  async read(key: string): Promise<Buffer | undefined> {
    return readFileIfExists(this.pathOf(key));
  }

  async write(key: string, data: string | Uint8Array, options: StorageWriteOptions = {}): Promise<void> {
    const path = this.pathOf(key);
    if (options.fence?.lost) throw lockLostError(options.fence.key, key, this.location);
    await writeFileAtomic(path, data, { mode: options.mode ?? 0o644 });
  }

  async delete(key: string): Promise<void> {
    const path = this.pathOf(key);
    try {
      await unlink(path);
    } catch (err) {
      if (isErrnoCode(err, 'ENOENT')) return;
      throw new ProximationError('ERR_FILE_WRITE', `Could not remove ${path}: ${errorMessage(err)}. Check its directory's permissions.`, { cause: err });
    }
  }

  async list(prefix: string): Promise<string[]> {
    const dir = prefix === '' ? this.#root : join(this.#root, checkStoragePrefix(prefix));
    let entries;
    try {
      entries = await readdir(dir, { recursive: true, withFileTypes: true });
    } catch (err) {
      if (isErrnoCode(err, 'ENOENT') || isErrnoCode(err, 'ENOTDIR')) return [];
      throw new ProximationError('ERR_FILE_READ', `Could not list ${dir}: ${errorMessage(err)}. Check its permissions.`, { cause: err });
    }
    return entries
      .filter((entry) => entry.isFile() && !entry.name.startsWith('.'))
      .map((entry) => relative(this.#root, join(entry.parentPath, entry.name)).split(sep).join('/'))
      .sort();
  }

  async lock(key: string, options?: StorageLockOptions): Promise<StorageLock> {
    return new FileStorageLock(key, await acquireLock(this.pathOf(key), options));
  }

  readonly notifies = false;

  async watch(): Promise<() => void> {
    return () => undefined;
  }

  async close(): Promise<void> {
    // Nothing held open: every call opens and closes its own files.
  }
}

class FileStorageLock implements StorageLock {
  readonly key: string;
  readonly #lock: Lock;

  constructor(key: string, lock: Lock) {
    this.key = key;
    this.#lock = lock;
  }

  get lost(): boolean {
    return this.#lock.lost;
  }

  release(): Promise<void> {
    return this.#lock.release();
  }
}
