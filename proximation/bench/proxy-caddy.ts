/**
 * Caddy (Debian package) as an HTTPS reverse proxy: `reverse_proxy` with an idle pool of 128 per host
 * (as nginx gets; Caddy's default of 32 makes it reopen connections at 50 clients), the certificate from
 * a file, HTTP/1.1 and HTTP/2 only, admin endpoint and automatic HTTPS off, no access log. HOME and
 * XDG directories point into the run's directory so that Caddy writes nothing elsewhere.
 * Throws as `ProxyUnderTest.start` documents.
 */
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { freePorts } from './ports.js';
import { waitUntilProxying, type ProxyContext, type ProxyUnderTest, type RunningProxy } from './proxy.js';

export const caddyProxy: ProxyUnderTest = {
  key: 'caddy',
  label: 'Caddy',
  supportsHttp2: true,
  async start(ctx: ProxyContext): Promise<RunningProxy> {
    const [httpsPort] = (await freePorts(1)) as [number];
    const caddyfile = join(ctx.dir, 'Caddyfile');
    await writeFile(
      caddyfile,
      [
        '{',
        '\tadmin off',
        '\tauto_https off',
        '\tservers {',
        '\t\tprotocols h1 h2',
        '\t}',
        '\tlog {',
        '\t\tlevel WARN',
        '\t}',
        '}',
        `https://localhost:${httpsPort} {`,
        '\tbind 127.0.0.1',
        `\ttls ${ctx.tls.certPath} ${ctx.tls.keyPath}`,
        `\treverse_proxy 127.0.0.1:${ctx.upstream.port} {`,
        '\t\ttransport http {',
        '\t\t\tkeepalive_idle_conns_per_host 128',
        '\t\t}',
        '\t}',
        '}',
        '',
      ].join('\n'),
    );
    const service = await ctx.children.start({
      name: 'proxy-caddy',
      command: 'caddy',
      args: ['run', '--config', caddyfile, '--adapter', 'caddyfile'],
      core: ctx.core,
      env: {
        ...process.env,
        HOME: ctx.dir,
        XDG_DATA_HOME: join(ctx.dir, 'data'),
        XDG_CONFIG_HOME: join(ctx.dir, 'config'),
        XDG_CACHE_HOME: join(ctx.dir, 'cache'),
      },
      cwd: ctx.dir,
    });
    await waitUntilProxying('Caddy proxy', [service], httpsPort, ctx.tls.certPem);
    return { service, httpsPort, caPem: ctx.tls.certPem };
  },
};
