/**
 * How the container image starts proximation, for the benchmark to start it the same way: the Node
 * flags between `node` and the script in Dockerfile.proximation's ENTRYPOINT, and the allocator the
 * image preloads (`ENV LD_PRELOAD=...`), found on this machine by its file name in the system library
 * directories (the image links it into /usr/local/lib; Debian's package puts it under
 * /usr/lib/<multiarch>). Throws `ERR_BENCH_DOCKERFILE` naming the file when the ENTRYPOINT is missing or
 * is not `["node", ...flags, script, ...]`, and when the preloaded library is not installed here.
 */
import { existsSync, readFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ProximationError } from '@proximation/shared';

const DOCKERFILE = fileURLToPath(new URL('../../Dockerfile.proximation', import.meta.url));
const LIBRARY_DIRS = ['/usr/lib/x86_64-linux-gnu', '/usr/lib/aarch64-linux-gnu', '/usr/lib', '/usr/local/lib'];

export function imageNodeFlags(): string[] {
  const line = /^ENTRYPOINT\s+(\[.*\])\s*$/m.exec(readFileSync(DOCKERFILE, 'utf8'))?.[1];
  const entrypoint = line === undefined ? undefined : (JSON.parse(line) as unknown);
  if (!Array.isArray(entrypoint) || entrypoint[0] !== 'node' || !entrypoint.every((a) => typeof a === 'string')) {
    throw new ProximationError('ERR_BENCH_DOCKERFILE', `${DOCKERFILE}: expected ENTRYPOINT ["node", ...flags, script]; the benchmark runs proximation with the image's Node flags.`);
  }
  const args = entrypoint.slice(1) as string[];
  return args.slice(0, args.findIndex((a) => !a.startsWith('-')));
}

/** `{ LD_PRELOAD }` with this machine's copy of the library the image preloads, or `{}` when it preloads none. */
export function imagePreload(): { LD_PRELOAD?: string } {
  const inImage = /^ENV LD_PRELOAD=(\S+)\s*$/m.exec(readFileSync(DOCKERFILE, 'utf8'))?.[1];
  if (inImage === undefined) return {};
  const local = LIBRARY_DIRS.map((dir) => join(dir, basename(inImage))).find((candidate) => existsSync(candidate));
  if (local === undefined) {
    throw new ProximationError(
      'ERR_BENCH_DOCKERFILE',
      `${DOCKERFILE} preloads ${inImage}, and no ${basename(inImage)} is installed in ${LIBRARY_DIRS.join(', ')}; ` +
        'install it (scripts/install-system-deps.sh does) so that proximation runs as in the image.',
    );
  }
  return { LD_PRELOAD: local };
}
