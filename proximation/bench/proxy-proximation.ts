/**
 * proximation as the proxy under test, started through its CLI (`proximation serve`) the way the image
 * starts it (the Node flags of its ENTRYPOINT, the allocator it preloads), with state in the run's directory: a routes file with one
 * site `bench` (host `localhost`) whose active version points at the upstream, and the embedded local CA
 * as issuer (ECDSA P-256). Ready when
 * `/healthz` on the admin port answers 200 and HTTPS through the proxy verifies against the local root
 * (printed by `proximation ca-cert`). Two rows: access log off (the comparison) and on (its cost);
 * `PROXIMATION_WORKERS=1` unless `workers` says otherwise (the per-core rows measure one process; the
 * whole-machine rows leave the default, one worker per CPU, and compare it with one worker).
 * Throws as `ProxyUnderTest.start` documents; `ERR_BENCH_COMMAND` when the CLI has not been built.
 */
import { existsSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ProximationError } from '@proximation/shared';
import { imageNodeFlags, imagePreload } from './image-launch.js';
import { freePorts } from './ports.js';
import { waitUntilProxying, READY_TIMEOUT_MS, type ProxyContext, type ProxyUnderTest, type RunningProxy } from './proxy.js';
import { fetchLocal, pollUntilReady } from './readiness.js';

const cli = fileURLToPath(new URL('../dist/bin/proximation.js', import.meta.url));
const PEM_CERT = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----\n?/;

/** A routing table with one site `bench` (host `localhost`) whose active version is `upstreamOrigin`. */
export function routesFile(upstreamOrigin: string): string {
  const version = 'bench-1';
  const table = {
    schemaVersion: 1,
    generation: 1,
    sites: [
      {
        name: 'bench',
        hosts: ['localhost'],
        activeVersion: version,
        history: [],
        versions: [{ name: version, upstreams: [upstreamOrigin], registeredAt: new Date().toISOString() }],
      },
    ],
  };
  return `${JSON.stringify(table, null, 2)}\n`;
}

/** The parent's environment without PROXIMATION_* settings, which would otherwise leak into the run. */
function cleanEnv(): NodeJS.ProcessEnv {
  return Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('PROXIMATION_')));
}

/** The environment of `proximation serve` as the image runs it, on 127.0.0.1 with these ports and state directory. */
export function serveEnv(ports: { httpPort: number; httpsPort: number; adminPort: number }, leDir: string, accessLog: boolean): NodeJS.ProcessEnv {
  return {
    ...cleanEnv(),
    ...imagePreload(),
    NODE_ENV: 'production',
    PROXIMATION_HTTP_PORT: String(ports.httpPort),
    PROXIMATION_HTTPS_PORT: String(ports.httpsPort),
    PROXIMATION_ADMIN_PORT: String(ports.adminPort),
    PROXIMATION_LISTEN_ADDRESS: '127.0.0.1',
    PROXIMATION_LETSENCRYPT_DIR: leDir,
    PROXIMATION_ACCESS_LOG: accessLog ? 'on' : 'off',
  };
}

/**
 * Every load generator connects from 127.0.0.1: the per-address limits, which bound one client among
 * many (500 requests a second by default), would cap the rows instead of the proxy.
 */
export const ONE_ADDRESS_LIMITS = {
  PROXIMATION_MAX_CONNECTIONS_PER_ADDRESS: '100000',
  PROXIMATION_MAX_REQUEST_RATE_PER_ADDRESS: '10000000',
  PROXIMATION_MAX_UPSTREAM_REQUESTS_PER_ADDRESS: '100000',
};

function proximation(key: string, label: string, accessLog: boolean, workers: number | 'default'): ProxyUnderTest {
  return {
    key,
    label,
    supportsHttp2: true,
    async start(ctx: ProxyContext): Promise<RunningProxy> {
      if (!existsSync(cli)) {
        throw new ProximationError(
          'ERR_BENCH_COMMAND',
          `${cli} does not exist; build proximation first (npx tsc -b) or leave it out with BENCH_PROXIES.`,
        );
      }
      const [httpPort, httpsPort, adminPort] = (await freePorts(3)) as [number, number, number];
      const leDir = join(ctx.dir, 'le');
      const routes = join(leDir, 'proximation', 'routes.json');
      await mkdir(join(leDir, 'proximation'), { recursive: true, mode: 0o755 });
      await writeFile(routes, routesFile(ctx.upstream.origin));
      const env: NodeJS.ProcessEnv = {
        ...serveEnv({ httpPort, httpsPort, adminPort }, leDir, accessLog),
        PROXIMATION_ROUTES: routes,
        PROXIMATION_ISSUER: 'local',
        ...(workers === 'default' ? {} : { PROXIMATION_WORKERS: String(workers) }),
        ...ONE_ADDRESS_LIMITS,
        // info: start-up lines and the memory release (once per burst); the access log is its own setting.
        PROXIMATION_LOG_LEVEL: 'info',
      };
      const service = await ctx.children.start({
        name: `proxy-${key}`,
        command: process.execPath,
        args: [...imageNodeFlags(), cli, 'serve'],
        core: ctx.core,
        env,
        cwd: ctx.dir,
      });
      await pollUntilReady(`${label} /healthz`, READY_TIMEOUT_MS, [service], async () => {
        const { status } = await fetchLocal(adminPort, '/healthz');
        if (status !== 200) throw new Error(`/healthz answered ${status}`);
      });
      const caPem = await pollUntilReady(`${label} ca-cert`, READY_TIMEOUT_MS, [service], async () => {
        const { stdout } = await ctx.children.run(
          { name: 'proximation-ca-cert', command: process.execPath, args: [cli, 'ca-cert'], env, cwd: ctx.dir },
          10_000,
        );
        const pem = PEM_CERT.exec(stdout)?.[0];
        if (pem === undefined) throw new Error(`proximation ca-cert printed no PEM certificate: ${stdout.slice(0, 200)}`);
        return pem;
      });
      await waitUntilProxying(label, [service], httpsPort, caPem);
      return { service, httpsPort, caPem };
    },
  };
}

export const proximationProxy = proximation('proximation', 'proximation', false, 1);
export const proximationWithAccessLog = proximation('proximation-access-log', 'proximation (access log on)', true, 1);
export const proximationEveryCore = proximation('proximation-workers', 'proximation (a worker per CPU)', false, 'default');
export const proximationOneWorker = proximation('proximation-1-worker', 'proximation (1 worker)', false, 1);
