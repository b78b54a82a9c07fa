/**
 * File storage on a directory that several processes and machines share (local disk or NFS/EFS).
 * The contract, in the spirit of certmagic's Storage:
 *
 * - `writeFileAtomic`: a reader of `path` sees either the complete previous content or the complete new
 *   content, never a mix, an empty or a missing file (for a path that existed before). When the promise
 *   resolves the data and the rename are on stable storage (file and directory fsynced). The parent
 *   directory is created if missing. The temp file (`.<name>.<random>.tmp` in the same directory, so the
 *   rename never crosses filesystems) is removed when anything fails. Concurrent writers do not interleave:
 *   the last rename wins. Writers that must not lose each other's changes serialise with `lock.ts`.
 *   The file gets exactly `mode` (default 0o644), independent of the umask.
 * - `readFileIfExists`: the content, or `undefined` when the file does not exist.
 * - `fsyncDirectory`: makes created, renamed and deleted entries of `dir` durable.
 *
 * Failures throw ProximationError `ERR_FILE_WRITE` / `ERR_FILE_READ` naming the path, with the system
 * error as `cause`.
 */
import { randomBytes } from 'node:crypto';
import { mkdir, open, readFile, rename, unlink } from 'node:fs/promises';
import type { FileHandle } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { ProximationError, errorMessage, isErrnoCode } from './errors.js';

export interface WriteFileAtomicOptions {
  /** Permission bits of the written file; default 0o644. */
  mode?: number;
}

export async function writeFileAtomic(path: string, data: string | Uint8Array, options: WriteFileAtomicOptions = {}): Promise<void> {
  const dir = dirname(path);
  const temp = join(dir, `.${basename(path)}.${randomBytes(6).toString('hex')}.tmp`);
  let handle: FileHandle | undefined;
  try {
    await mkdir(dir, { recursive: true });
    handle = await open(temp, 'wx');
    await handle.chmod(options.mode ?? 0o644);
    await handle.writeFile(data);
    await handle.sync();
    await handle.close();
    handle = undefined;
    await rename(temp, path);
  } catch (err) {
    await handle?.close().catch(() => undefined);
    // The temp file may not exist (open failed); any other unlink failure is secondary to `err`.
    await unlink(temp).catch(() => undefined);
    throw new ProximationError(
      'ERR_FILE_WRITE',
      `Could not write ${path}: ${errorMessage(err)}. Check that its directory is writable and the filesystem is not full.`,
      { cause: err },
    );
  }
  await fsyncDirectory(dir);
}

export async function readFileIfExists(path: string): Promise<Buffer | undefined> {
  try {
    return await readFile(path);
  } catch (err) {
    if (isErrnoCode(err, 'ENOENT')) return undefined;
    throw new ProximationError('ERR_FILE_READ', `Could not read ${path}: ${errorMessage(err)}. Check its permissions.`, { cause: err });
  }
}

export async function fsyncDirectory(dir: string): Promise<void> {
  let handle: FileHandle | undefined;
  try {
    handle = await open(dir, 'r');
    await handle.sync();
  } catch (err) {
    // Some filesystems cannot fsync a directory (EINVAL); there the rename is as durable as it gets.
    if (isErrnoCode(err, 'EINVAL')) return;
    throw new ProximationError('ERR_FILE_WRITE', `Could not fsync directory ${dir}: ${errorMessage(err)}.`, { cause: err });
  } finally {
    await handle?.close();
  }
}
