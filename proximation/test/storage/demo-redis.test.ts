// `proximation demo` with its state on a real redis-server: the example site is written to the table in
// Redis (the storage the proxy reads, not a file beside it), served at localhost, and ca-cert prints
// the root the demo's certificate chains to, as the demo's hint says.
import https from 'node:https';
import { ROUTES_KEY, findSite, readRoutingTable } from '@proximation/shared';
import { describe, expect, it } from 'vitest';
import { useRedisServer } from '../../../shared/test/redis-server.js';
import { httpRequest, managed } from '../support/fixtures.js';
import { freePorts, runMain, spawnCli, waitUntil } from '../support/process.js';
import { redisFleet } from '../support/redis-fleet.js';

const resources = managed();

describe('the demo on Redis', () => {
  const redis = useRedisServer();

  it('writes its site to the table in Redis and serves it', async () => {
    const { env, storage } = await redisFleet(resources, redis());
    const [http, httpsPort, admin] = (await freePorts(3)) as [number, number, number];
    const demo = spawnCli(['demo'], {
      ...env,
      PROXIMATION_HTTP_PORT: String(http),
      PROXIMATION_HTTPS_PORT: String(httpsPort),
      PROXIMATION_ADMIN_PORT: String(admin),
      PROXIMATION_LISTEN_ADDRESS: '127.0.0.1',
      PROXIMATION_WORKERS: '1',
      PROXIMATION_LOG_FORMAT: 'json',
    });
    resources.defer(async () => {
      if (demo.child.exitCode === null && demo.child.signalCode === null) demo.child.kill('SIGKILL');
      await demo.exited;
    });
    await waitUntil(async () => (await httpRequest(admin, 'localhost', '/healthz').catch(() => undefined))?.status === 200, 'the demo to serve', 30_000);
    expect(findSite(await readRoutingTable(storage, ROUTES_KEY), 'example')).toMatchObject({ hosts: ['localhost'], activeVersion: 'demo' });
    await waitUntil(() => demo.stderr().includes('proximation ca-cert > ca.pem'), 'the hint to fetch the root', 10_000);

    const { code, out: ca } = await runMain(['ca-cert'], env);
    expect(code).toBe(0);
    const body = await new Promise<string>((resolve, reject) => {
      https
        .get({ host: '127.0.0.1', port: httpsPort, servername: 'localhost', headers: { host: 'localhost' }, ca, agent: false }, (res) => {
          let text = '';
          res.on('data', (c: Buffer) => (text += c.toString()));
          res.on('end', () => resolve(text));
        })
        .on('error', reject);
    });
    expect(body).toContain('Hello from the example upstream, reached through proximation.');
  }, 60_000);
});
