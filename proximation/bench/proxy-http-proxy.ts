/**
 * The http-proxy 1.18 reference row: starts `http-proxy-reference-server.js` (compiled next to this
 * module) under the current Node. HTTP/1.1 only, so the HTTP/2 scenario does not apply.
 * Throws as `ProxyUnderTest.start` documents.
 */
import { fileURLToPath } from 'node:url';
import { freePorts } from './ports.js';
import { waitUntilProxying, type ProxyContext, type ProxyUnderTest, type RunningProxy } from './proxy.js';

const serverScript = fileURLToPath(new URL('./http-proxy-reference-server.js', import.meta.url));

export const httpProxyReference: ProxyUnderTest = {
  key: 'http-proxy',
  label: 'http-proxy 1.18',
  supportsHttp2: false,
  async start(ctx: ProxyContext): Promise<RunningProxy> {
    const [httpsPort] = (await freePorts(1)) as [number];
    const service = await ctx.children.start({
      name: 'proxy-http-proxy',
      command: process.execPath,
      args: [serverScript],
      core: ctx.core,
      env: {
        ...process.env,
        NODE_ENV: 'production',
        BENCH_HTTPS_PORT: String(httpsPort),
        BENCH_TARGET: ctx.upstream.origin,
        BENCH_TLS_CERT: ctx.tls.certPath,
        BENCH_TLS_KEY: ctx.tls.keyPath,
      },
    });
    await waitUntilProxying('http-proxy reference', [service], httpsPort, ctx.tls.certPem);
    return { service, httpsPort, caPem: ctx.tls.certPem };
  },
};
