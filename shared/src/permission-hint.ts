/**
 * What to say when the file system refuses access (EACCES, EPERM): which path, which user the process
 * runs as, and who owns the directory that refuses, so an operator can fix the owner of a volume or the
 * task's user without guessing. The usual cause is a shared volume (EFS, NFS) created by one uid and
 * mounted into a container that runs as another.
 *
 * `permissionHint` never throws: it reads only metadata (stat) of the path and its parents, and returns
 * undefined for an error that is not a refused access.
 */
import { statSync, type Stats } from 'node:fs';
import path from 'node:path';

/** The refused access in `err` or its `cause` chain: code, path and the operation. */
function refusedAccess(err: unknown): NodeJS.ErrnoException | undefined {
  for (let e = err, depth = 0; e instanceof Error && depth < 5; e = e.cause, depth++) {
    const code = (e as NodeJS.ErrnoException).code;
    if ((code === 'EACCES' || code === 'EPERM') && typeof (e as NodeJS.ErrnoException).path === 'string') return e as NodeJS.ErrnoException;
  }
  return undefined;
}

/** The path itself or the nearest parent this process can stat (the one that refuses to be entered). */
function nearestVisible(target: string): { dir: string; stats: Stats } | undefined {
  for (let dir = path.resolve(target); ; dir = path.dirname(dir)) {
    try {
      return { dir, stats: statSync(dir) };
    } catch {
      if (path.dirname(dir) === dir) return undefined;
    }
  }
}

/**
 * "Permission denied on <path> (open): <program> runs as uid U (gid G), but <dir> is owned by uid O
 * (gid P) with mode 0700. ..." for a refused access; undefined for any other error.
 */
export function permissionHint(err: unknown, program: string): string | undefined {
  const refused = refusedAccess(err);
  if (refused === undefined || typeof process.getuid !== 'function' || typeof process.getgid !== 'function') return undefined;
  const uid = process.getuid();
  const gid = process.getgid();
  const target = refused.path!;
  const visible = nearestVisible(target);
  const operation = refused.syscall === undefined ? '' : ` (${refused.syscall})`;
  const lead = `Permission denied on ${target}${operation}: ${program} runs as uid ${uid} (gid ${gid})`;
  if (visible === undefined) return `${lead}. Give this user access to the path, or run ${program} as a user that has it.`;
  const { dir, stats } = visible;
  const mode = (stats.mode & 0o7777).toString(8).padStart(4, '0');
  return (
    `${lead}, but ${dir} is owned by uid ${stats.uid} (gid ${stats.gid}) with mode ${mode}. ` +
    `Its owner must be uid ${uid} (or the mode must let uid ${uid} read and write it): for example chown -R ${uid}:${gid} ${dir}, ` +
    `or run ${program} as uid ${stats.uid}.`
  );
}
