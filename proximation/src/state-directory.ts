/**
 * What the commands that read a proxy's state (`ca-cert`, `certs`, `renew`) check before anything else:
 * that the letsencrypt directory is one a proxy or certbot uses, so a mistyped or missing
 * PROXIMATION_LETSENCRYPT_DIR fails the command instead of making it report nothing, or create a new,
 * unrelated state (a CA whose root matches no proxy, a routing table nobody serves).
 *
 * `requireStateDirectory` resolves when `dir` holds at least one of proximation/, live/, accounts/ or
 * renewal/; it creates nothing. Otherwise it throws ProximationError ERR_STATE_DIR_MISSING (no such
 * directory) or ERR_NOT_STATE_DIR (a directory without any of them), naming the path and `origin`
 * (where the value came from, settingOrigin in config.ts). A refused access (EACCES) is passed on as the
 * system error, which the CLI turns into its permission hint.
 */
import { stat } from 'node:fs/promises';
import path from 'node:path';
import { ProximationError, isErrnoCode } from '@proximation/shared';

const MARKERS = ['proximation', 'live', 'accounts', 'renewal'] as const;

/** Whether `file` exists; ENOENT and ENOTDIR say no, anything else (EACCES) is thrown. */
async function exists(file: string): Promise<boolean> {
  try {
    await stat(file);
    return true;
  } catch (err) {
    if (isErrnoCode(err, 'ENOENT') || isErrnoCode(err, 'ENOTDIR')) return false;
    throw err;
  }
}

export async function requireStateDirectory(dir: string, origin: string): Promise<void> {
  const point = 'point PROXIMATION_LETSENCRYPT_DIR (or --letsencrypt-dir) at the directory the proxies use';
  if (!(await exists(dir))) {
    throw new ProximationError('ERR_STATE_DIR_MISSING', `The letsencrypt directory ${dir} (${origin}) does not exist: ${point}.`);
  }
  for (const marker of MARKERS) if (await exists(path.join(dir, marker))) return;
  throw new ProximationError(
    'ERR_NOT_STATE_DIR',
    `${dir} (${origin}) is not a proximation directory: it holds none of ${MARKERS.map((m) => `${m}/`).join(', ')}. ${point[0]!.toUpperCase()}${point.slice(1)}; nothing was changed.`,
  );
}
