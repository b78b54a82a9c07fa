/**
 * The file backend of storage.ts: a key is the path of the same name under `root`, so the directory is
 * exactly today's layout (certbot's live/ archive/ renewal/ accounts/, proximation/routes.json, the lock
 * files of lock.ts). Writes are file-storage.ts's atomic writes; locks are lock.ts's lease files; a
 * fenced write checks the holder's lease right before the rename (the best a directory allows). A link
 * is a relative symlink (`../../archive/<lineage>/cert1.pem`, as certbot makes them), created under a
 * temporary name and renamed over the old one, so the link is never missing.
 */
import { randomBytes } from 'node:crypto';
import { access, mkdir, readdir, readlink, rename, symlink, unlink } from 'node:fs/promises';
import { basename, dirname, isAbsolute, join, relative, resolve, sep } from 'node:path';
import { ProximationError, errorMessage, isErrnoCode } from '../errors.js';
import { fsyncDirectory, readFileIfExists, writeFileAtomic } from '../file-storage.js';
import { acquireLock } from '../lock.js';
import type { Lock } from '../lock.js';
import { checkStorageKey, checkStoragePrefix, linkTargetMissing, lockLostError } from './storage.js';
import type { Storage, StorageLock, StorageLockOptions, StorageWriteOptions } from './storage.js';

/** How messages name a key: the file's path on a directory, else the key and where the storage is. */
export function describeKey(storage: Storage, key: string): string {
  return storage instanceof FileStorage ? storage.pathOf(key) : `${key} in ${storage.location}`;
}

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
    try {
      return await readFileIfExists(this.pathOf(key));
    } catch (err) {
      // A directory (`live/<lineage>`) is a prefix of keys, not a key.
      if (err instanceof ProximationError && isErrnoCode(err.cause, 'EISDIR')) return undefined;
      throw err;
    }
  }

  async write(key: string, data: string | Uint8Array, options: StorageWriteOptions = {}): Promise<void> {
    const path = this.pathOf(key);
    if (options.fence?.lost) throw lockLostError(options.fence.key, key, this.location);
    await this.#makeDirectories(path, options.dirMode);
    await writeFileAtomic(path, data, { mode: options.mode ?? 0o644 });
  }

  async link(key: string, target: string, options: StorageWriteOptions = {}): Promise<void> {
    const path = this.pathOf(key);
    const targetPath = this.pathOf(target);
    if (options.fence?.lost) throw lockLostError(options.fence.key, key, this.location);
    try {
      await access(targetPath);
    } catch (err) {
      if (isErrnoCode(err, 'ENOENT')) throw linkTargetMissing(key, target, this.location);
      throw new ProximationError('ERR_FILE_READ', `Could not check ${targetPath}: ${errorMessage(err)}. Check its permissions.`, { cause: err });
    }
    await this.#makeDirectories(path, options.dirMode);
    const dir = dirname(path);
    const temporary = join(dir, `.${basename(path)}.${randomBytes(6).toString('hex')}.link`);
    try {
      await mkdir(dir, { recursive: true });
      await symlink(relative(dir, targetPath), temporary);
      await rename(temporary, path);
    } catch (err) {
      await unlink(temporary).catch(() => undefined);
      throw new ProximationError('ERR_FILE_WRITE', `Could not link ${path} to ${targetPath}: ${errorMessage(err)}. Check that its directory is writable.`, { cause: err });
    }
    await fsyncDirectory(dir);
  }

  async readLink(key: string): Promise<string | undefined> {
    const path = this.pathOf(key);
    let target: string;
    try {
      target = await readlink(path);
    } catch (err) {
      if (isErrnoCode(err, 'ENOENT') || isErrnoCode(err, 'EINVAL')) return undefined;
      throw new ProximationError('ERR_FILE_READ', `Could not read the link ${path}: ${errorMessage(err)}. Check its permissions.`, { cause: err });
    }
    const inside = relative(this.#root, resolve(dirname(path), target));
    // A link out of the directory is no key of this storage.
    return inside.startsWith('..') || isAbsolute(inside) ? undefined : inside.split(sep).join('/');
  }

  /** Creates the key's missing directories with `mode` and makes their entries durable; without a mode writeFileAtomic creates them. */
  async #makeDirectories(path: string, mode: number | undefined): Promise<void> {
    if (mode === undefined) return;
    const dir = dirname(path);
    try {
      // The storage's own directory keeps the default mode, unless the key lies right in it.
      if (dir !== this.#root) await mkdir(this.#root, { recursive: true });
      const created = await mkdir(dir, { recursive: true, mode });
      if (created === undefined) return;
      // Each new entry is durable once the directory holding it is synced: from created's parent down.
      for (let parent = dirname(dir); parent.length >= dirname(created).length; parent = dirname(parent)) {
        await fsyncDirectory(parent);
        if (parent === dirname(parent)) break;
      }
    } catch (err) {
      if (err instanceof ProximationError) throw err;
      throw new ProximationError('ERR_FILE_WRITE', `Could not create ${dir}: ${errorMessage(err)}. Check its parent's permissions.`, { cause: err });
    }
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
      .filter((entry) => (entry.isFile() || entry.isSymbolicLink()) && !entry.name.startsWith('.'))
      .map((entry) => relative(this.#root, join(entry.parentPath, entry.name)).split(sep).join('/'))
      .sort();
  }

  async lock(key: string, options: StorageLockOptions = {}): Promise<StorageLock> {
    const path = this.pathOf(key);
    await this.#makeDirectories(path, options.dirMode);
    return new FileStorageLock(key, await acquireLock(path, options));
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
