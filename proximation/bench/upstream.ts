/**
 * The upstream every proxy forwards to: nginx on the load-generator core (unpinned when `core` is undefined), answering `GET /` with a
 * 100-byte body (`return 200`) and `GET /64k.bin` with a 64 KiB static file, keep-alive without a request
 * limit. Guarantees both answers are verified before `startUpstream` resolves.
 * Throws `ERR_BENCH_NOT_READY` (from readiness) when nginx does not come up.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { ChildSupervisor, Service } from './children.js';
import { startNginx } from './nginx-process.js';
import { expectBody, pollUntilReady } from './readiness.js';
import { LARGE_BYTES, LARGE_PATH, SMALL_BYTES, SMALL_PATH } from './upstream-paths.js';


export interface Upstream {
  readonly service: Service;
  /** Origin for proxies' configuration, e.g. `http://127.0.0.1:40123`. */
  readonly origin: string;
  readonly port: number;
}

export async function startUpstream(
  children: ChildSupervisor,
  dir: string,
  port: number,
  core: number | undefined,
): Promise<Upstream> {
  const www = join(dir, 'www');
  await mkdir(www, { recursive: true, mode: 0o755 });
  await writeFile(join(www, LARGE_PATH.slice(1)), Buffer.alloc(LARGE_BYTES, 'x'), { mode: 0o644 });
  const small = 'x'.repeat(SMALL_BYTES - 1);
  const service = await startNginx(children, {
    name: 'upstream-nginx',
    dir,
    core,
    httpBlock: [
      '  server {',
      `    listen 127.0.0.1:${port};`,
      '    keepalive_requests 1000000;',
      `    location = ${SMALL_PATH} { default_type text/plain; return 200 "${small}\\n"; }`,
      `    location = ${LARGE_PATH} { root ${www}; }`,
      '  }',
    ].join('\n'),
  });
  await pollUntilReady('upstream nginx', 10_000, [service], async () => {
    await expectBody(port, SMALL_PATH, SMALL_BYTES);
    await expectBody(port, LARGE_PATH, LARGE_BYTES);
  });
  return { service, origin: `http://127.0.0.1:${port}`, port };
}
