/**
 * nginx as the reference HTTPS reverse proxy: one worker (`nginxProxy`) or `worker_processes auto`
 * (`nginxEveryCore`, for the whole-machine rows), upstream keep-alive pool of 128 per worker without a
 * request limit, HTTP/2 on the TLS listener, TLS 1.2 and 1.3 (1.22's default lacks 1.3), no access log.
 * Throws as `ProxyUnderTest.start` documents.
 */
import { startNginx } from './nginx-process.js';
import { freePorts } from './ports.js';
import { waitUntilProxying, type ProxyContext, type ProxyUnderTest, type RunningProxy } from './proxy.js';

function nginx(key: string, label: string, workerProcesses: 1 | 'auto'): ProxyUnderTest {
  return {
  key,
  label,
  supportsHttp2: true,
  async start(ctx: ProxyContext): Promise<RunningProxy> {
    const [httpsPort] = (await freePorts(1)) as [number];
    const service = await startNginx(ctx.children, {
      name: `proxy-${key}`,
      dir: ctx.dir,
      core: ctx.core,
      workerProcesses,
      httpBlock: [
        '  upstream backend {',
        `    server 127.0.0.1:${ctx.upstream.port};`,
        '    keepalive 128;',
        '    keepalive_requests 1000000;',
        '  }',
        '  server {',
        `    listen 127.0.0.1:${httpsPort} ssl http2;`,
        '    server_name localhost;',
        `    ssl_certificate ${ctx.tls.certPath};`,
        `    ssl_certificate_key ${ctx.tls.keyPath};`,
        '    ssl_protocols TLSv1.2 TLSv1.3;',
        '    keepalive_requests 1000000;',
        '    location / {',
        '      proxy_pass http://backend;',
        '      proxy_http_version 1.1;',
        '      proxy_set_header Connection "";',
        '    }',
        '  }',
      ].join('\n'),
    });
    await waitUntilProxying(label, [service], httpsPort, ctx.tls.certPem);
    return { service, httpsPort, caPem: ctx.tls.certPem };
  },
  };
}

export const nginxProxy = nginx('nginx', 'nginx (1 worker)', 1);
export const nginxEveryCore = nginx('nginx-auto', 'nginx (worker_processes auto)', 'auto');
