/**
 * The Node flags the container image starts proximation with: the options between `node` and the
 * script in Dockerfile.proximation's ENTRYPOINT. The benchmark runs proximation with the same flags, so
 * it measures the process the image runs. Throws `ERR_BENCH_DOCKERFILE` naming the file when the
 * ENTRYPOINT is missing or is not `["node", ...flags, script, ...]`.
 */
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { ProximationError } from '@proximation/shared';

const DOCKERFILE = fileURLToPath(new URL('../../Dockerfile.proximation', import.meta.url));

export function imageNodeFlags(): string[] {
  const line = /^ENTRYPOINT\s+(\[.*\])\s*$/m.exec(readFileSync(DOCKERFILE, 'utf8'))?.[1];
  const entrypoint = line === undefined ? undefined : (JSON.parse(line) as unknown);
  if (!Array.isArray(entrypoint) || entrypoint[0] !== 'node' || !entrypoint.every((a) => typeof a === 'string')) {
    throw new ProximationError('ERR_BENCH_DOCKERFILE', `${DOCKERFILE}: expected ENTRYPOINT ["node", ...flags, script]; the benchmark runs proximation with the image's Node flags.`);
  }
  const args = entrypoint.slice(1) as string[];
  return args.slice(0, args.findIndex((a) => !a.startsWith('-')));
}
