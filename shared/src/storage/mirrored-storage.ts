/**
 * A storage that also writes the keys under some prefixes to a second storage: proximation's local
 * certbot copy of the certificates when the shared state is on Redis. Reads, lists, locks and watches
 * are the primary's alone. A write, link or delete of a mirrored key goes to the primary first and, once
 * that succeeded, to the mirror (without the fence: the primary's write already passed it). A failure
 * of the mirror never fails the caller, since the primary holds the state: it goes to `onMirrorError`,
 * and the next `sync` repairs it.
 *
 * `sync(prefixes)` copies what the mirror lacks or holds differently under those prefixes (each also
 * as a key of its own, such as `renewal/<lineage>.conf`), through copyStorage: idempotent, verified, links
 * as links. Call it at start and whenever another instance may have written (a certificate picked up).
 * It throws copyStorage's and the storages' errors.
 */
import { copyStorage } from './copy.js';
import type { CopyResult } from './copy.js';
import type { Storage, StorageLock, StorageLockOptions, StorageWriteOptions } from './storage.js';

export class MirroredStorage implements Storage {
  readonly location: string;
  readonly notifies: boolean;

  constructor(
    readonly primary: Storage,
    readonly mirror: Storage,
    private readonly prefixes: readonly string[],
    private readonly onMirrorError: (key: string, err: unknown) => void,
  ) {
    this.location = primary.location;
    this.notifies = primary.notifies;
  }

  read(key: string): Promise<Buffer | undefined> {
    return this.primary.read(key);
  }

  async write(key: string, data: string | Uint8Array, options: StorageWriteOptions = {}): Promise<void> {
    await this.primary.write(key, data, options);
    await this.#mirrored(key, () => this.mirror.write(key, data, withoutFence(options)));
  }

  async link(key: string, target: string, options: Omit<StorageWriteOptions, 'mode'> = {}): Promise<void> {
    await this.primary.link(key, target, options);
    await this.#mirrored(key, () => this.mirror.link(key, target, withoutFence(options)));
  }

  readLink(key: string): Promise<string | undefined> {
    return this.primary.readLink(key);
  }

  async delete(key: string): Promise<void> {
    await this.primary.delete(key);
    await this.#mirrored(key, () => this.mirror.delete(key));
  }

  list(prefix: string): Promise<string[]> {
    return this.primary.list(prefix);
  }

  lock(key: string, options?: StorageLockOptions): Promise<StorageLock> {
    return this.primary.lock(key, options);
  }

  watch(listener: (key: string | undefined) => void): Promise<() => void> {
    return this.primary.watch(listener);
  }

  sync(prefixes: readonly string[] = this.prefixes): Promise<CopyResult> {
    return copyStorage(this.primary, this.mirror, { prefixes });
  }

  async close(): Promise<void> {
    await this.primary.close();
    await this.mirror.close();
  }

  async #mirrored(key: string, step: () => Promise<void>): Promise<void> {
    if (!this.prefixes.some((prefix) => key.startsWith(`${prefix}/`))) return;
    try {
      await step();
    } catch (err) {
      this.onMirrorError(key, err);
    }
  }
}

function withoutFence<T extends StorageWriteOptions>(options: T): Omit<T, 'fence'> {
  const { fence: _fence, ...rest } = options;
  return rest;
}
