/**
 * What the runner needs from each proxy under test, and the readiness check they share.
 * Contract for implementations: `start` resolves only once HTTPS on 127.0.0.1:`httpsPort` with SNI
 * `localhost` serves both upstream paths through the proxy, verified against `caPem`; the returned
 * service leads the process group holding every process of the proxy. Throws `ERR_BENCH_NOT_READY`.
 */
import type { ChildSupervisor, Service } from './children.js';
import { expectBody, pollUntilReady } from './readiness.js';
import type { TlsMaterial } from './tls-material.js';
import type { Upstream } from './upstream.js';
import { LARGE_BYTES, LARGE_PATH, SMALL_BYTES, SMALL_PATH } from './upstream-paths.js';

export interface ProxyContext {
  readonly children: ChildSupervisor;
  /** Empty directory for this start of this proxy. */
  readonly dir: string;
  /** Core to pin the proxy to; undefined: the whole machine. */
  readonly core: number | undefined;
  readonly upstream: Upstream;
  /** Certificate for proxies that take one from a file (proximation issues its own). */
  readonly tls: TlsMaterial;
}

export interface RunningProxy {
  readonly service: Service;
  readonly httpsPort: number;
  readonly caPem: string;
}

export interface ProxyUnderTest {
  /** Stable identifier used in `BENCH_PROXIES` and the JSON output. */
  readonly key: string;
  /** Column heading in the Markdown table. */
  readonly label: string;
  readonly supportsHttp2: boolean;
  start(ctx: ProxyContext): Promise<RunningProxy>;
}

export const READY_TIMEOUT_MS = 30_000;

/** Waits until both upstream paths come back through the proxy over verified HTTPS. */
export async function waitUntilProxying(
  what: string,
  services: readonly Service[],
  httpsPort: number,
  caPem: string,
): Promise<void> {
  const tls = { ca: caPem, servername: 'localhost' };
  await pollUntilReady(what, READY_TIMEOUT_MS, services, async () => {
    await expectBody(httpsPort, SMALL_PATH, SMALL_BYTES, tls);
    await expectBody(httpsPort, LARGE_PATH, LARGE_BYTES, tls);
  });
}
