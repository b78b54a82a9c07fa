/**
 * Starts one of the benchmark's own Node reference servers (compiled next to this module) as a proxy
 * under test: on the proxy's core, under the Node running the benchmark, with the benchmark's
 * self-signed certificate, the upstream's origin and a free port in its environment, and resolves once it
 * serves both paths (see `waitUntilProxying`). Throws as `ProxyUnderTest.start` documents.
 */
import { fileURLToPath } from 'node:url';
import { freePorts } from './ports.js';
import { waitUntilProxying, type ProxyContext, type RunningProxy } from './proxy.js';

export async function startReferenceServer(
  ctx: ProxyContext,
  label: string,
  script: string,
  env: NodeJS.ProcessEnv,
): Promise<RunningProxy> {
  const [httpsPort] = (await freePorts(1)) as [number];
  const service = await ctx.children.start({
    name: `proxy-${label.replace(/[^a-z0-9]+/gi, '-')}`,
    command: process.execPath,
    args: [fileURLToPath(new URL(script, import.meta.url))],
    core: ctx.core,
    env: {
      ...process.env,
      ...env,
      NODE_ENV: 'production',
      BENCH_HTTPS_PORT: String(httpsPort),
      BENCH_TARGET: ctx.upstream.origin,
      BENCH_TLS_CERT: ctx.tls.certPath,
      BENCH_TLS_KEY: ctx.tls.keyPath,
    },
  });
  await waitUntilProxying(label, [service], httpsPort, ctx.tls.certPem);
  return { service, httpsPort, caPem: ctx.tls.certPem };
}
