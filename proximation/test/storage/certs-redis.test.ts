// The certificate side of `proximation serve` on a real redis-server with the local CA (no ACME CA
// needed): the CA and the certificates live in Redis, a second instance (with workers) serves the same certificate,
// `certs` and `ca-cert` read Redis, and a certificate value in Redis that does not parse is logged while
// the last good certificate keeps being served.
import { randomBytes } from 'node:crypto';
import { ROUTES_KEY, connectRedisStorage, serializeRoutingTable } from '@proximation/shared';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startRedisServer, type RedisServer } from '../../../shared/test/redis-server.js';
import { managed, table, tempDir } from '../support/fixtures.js';
import { servedCertificate } from '../support/pebble.js';
import { spawnCli, startServeProcess, waitUntil } from '../support/process.js';

const resources = managed();

describe('certificates on Redis', () => {
  let redis: RedisServer;
  beforeAll(async () => {
    redis = await startRedisServer();
  });
  afterAll(async () => {
    await redis?.stop({ final: true });
  });

  it('shares the local CA and its certificates between instances, and keeps the last good one when a stored value is broken', async () => {
    const prefix = `certs${randomBytes(4).toString('hex')}:`;
    const storage = await connectRedisStorage(redis.url, { keyPrefix: prefix });
    resources.defer(() => storage.close());
    await storage.write(ROUTES_KEY, serializeRoutingTable(table([{ name: 'lc', hosts: ['lc.test'], upstreams: ['http://127.0.0.1:9'] }])));
    const env = { PROXIMATION_STORAGE: redis.url, PROXIMATION_STORAGE_PREFIX: prefix, PROXIMATION_CERT_POLL: '200ms' };
    const dirs = await Promise.all([tempDir(), tempDir()]);
    for (const dir of dirs) resources.defer(() => dir.close());
    // b with two workers: each serving process reads the challenge tokens from Redis itself.
    // Each killed after the test even when the other failed to start.
    const [a, b] = await Promise.all(
      dirs.map(async (dir, i) => {
        const proxy = await startServeProcess(dir.path, { ...env, PROXIMATION_WORKERS: i === 0 ? '1' : '2' }, 30_000);
        resources.defer(() => proxy.kill());
        return proxy;
      }),
    );

    const rootPem = (await storage.read('proximation/local-ca/root.pem'))!.toString('utf8');
    const first = await servedCertificate({ rootPem }, 'lc.test', a!.ports.https);
    expect((await servedCertificate({ rootPem }, 'lc.test', b!.ports.https)).serialNumber).toBe(first.serialNumber);
    expect(await storage.list('archive/lc.test')).toHaveLength(4);

    const caCert = spawnCli(['ca-cert'], env);
    expect((await caCert.exited).code, caCert.stderr()).toBe(0);
    expect(caCert.stdout()).toBe(rootPem);
    const certs = spawnCli(['certs', '--json'], env);
    expect((await certs.exited).code, certs.stderr()).toBe(0);
    expect(JSON.parse(certs.stdout())).toMatchObject([{ name: 'lc.test', routed: true, serialNumber: BigInt(`0x${first.serialNumber}`).toString(16) }]);

    // A broken value where the certificate was: logged by the next check, and the served one stays.
    await storage.write('live/lc.test/fullchain.pem', 'not a certificate');
    await waitUntil(() => a!.cli.stdout().includes('ERR_CERT_LINEAGE_INVALID') || a!.cli.stdout().includes('contains no certificate'), 'the broken value to be logged', 20_000);
    expect(a!.cli.stdout()).toContain('could not obtain a certificate; will retry');
    expect((await servedCertificate({ rootPem }, 'lc.test', a!.ports.https)).serialNumber).toBe(first.serialNumber);
    expect(await a!.routesGeneration()).toBe(1);
  }, 90_000);
});
