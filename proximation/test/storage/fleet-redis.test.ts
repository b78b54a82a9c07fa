// Three `proximation serve` processes sharing their state on a real redis-server, against a real ACME
// CA (Pebble): one order per name across the fleet (counted in the logs and at Pebble), every instance
// serving what one of them obtained, each instance's certbot copy readable by certbot, and a lock holder
// killed with SIGKILL mid-order (the next instance completes, nothing half-written). Pebble validates
// only on PEBBLE_PORTS, so instance "a" owns those ports and answers the challenges its peers placed in
// Redis. The file-backend fleet is test/acme/fleet.test.ts, unchanged.
import { randomBytes } from 'node:crypto';
import fs from 'node:fs/promises';
import net from 'node:net';
import path from 'node:path';
import { ROUTES_KEY, connectRedisStorage, serializeRoutingTable, type RedisStorage } from '@proximation/shared';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startRedisServer, type RedisServer } from '../../../shared/test/redis-server.js';
import { AccountStore } from '../../src/certs/account-store.js';
import { pebbleKit } from '../acme/pebble-kit.js';
import { echoHandler, managed, table } from '../support/fixtures.js';
import { PEBBLE_PORTS, runCertbot, servedCertificate, usePebble } from '../support/pebble.js';
import { freePorts, spawnCli, startServeProcess, waitUntil, within, type CliProcess } from '../support/process.js';

const resources = managed();
const pebble = usePebble();
const kit = pebbleKit(resources, pebble);

describe('a fleet of three proxies on Redis, against Pebble', () => {
  let redis: RedisServer;
  beforeAll(async () => {
    redis = await startRedisServer();
  });
  afterAll(async () => {
    await redis?.stop({ final: true });
  });

  /** A fresh key prefix (a fleet of its own) and a handle on it for the test. */
  async function fleet(): Promise<{ prefix: string; storage: RedisStorage; env: Record<string, string> }> {
    const prefix = `fleet${randomBytes(4).toString('hex')}:`;
    const storage = await connectRedisStorage(redis.url, { keyPrefix: prefix });
    resources.defer(() => storage.close());
    const env = {
      PROXIMATION_STORAGE: redis.url,
      PROXIMATION_STORAGE_PREFIX: prefix,
      PROXIMATION_ISSUER: 'acme',
      PROXIMATION_ACME_DIRECTORY: pebble().directoryUrl,
      PROXIMATION_ACME_CA_CERTS: pebble().caCertsPath,
      PROXIMATION_CERT_POLL: '200ms',
      PROXIMATION_LOG_FORMAT: 'json',
    };
    return { prefix, storage, env };
  }

  const issuing = (cli: CliProcess): string[] =>
    cli.stdout().split('\n').filter((line) => line.includes('"msg":"issuing certificate"')).map((line) => (JSON.parse(line) as { host: string }).host);

  it('orders each name once for the fleet; all three serve it, and each certbot copy is one certbot reads', async () => {
    const { storage, env } = await fleet();
    const hosts = ['ra.test', 'rb.test', 'rc.test'];
    const upstream = await resources.upstream(echoHandler());
    await storage.write(ROUTES_KEY, serializeRoutingTable(table(hosts.map((host) => ({ name: host.split('.')[0]!, hosts: [host], upstreams: [upstream.origin] })))));
    const copies = await Promise.all(['a', 'b', 'c'].map(async () => kit.letsencryptDir()));
    const onPebblePorts = { PROXIMATION_HTTP_PORT: String(PEBBLE_PORTS.http01), PROXIMATION_HTTPS_PORT: String(PEBBLE_PORTS.tlsAlpn01) };
    // All three route every name from the start: they race for each name's lock in Redis.
    const instances = await Promise.all(
      copies.map(async (dir, i) => {
        // Killed after the test even when another instance failed to start.
        const instance = await startServeProcess(dir, { ...env, ...(i === 0 ? onPebblePorts : {}) }, 30_000);
        resources.defer(() => instance.kill());
        return instance;
      }),
    );
    const httpsPorts = [PEBBLE_PORTS.tlsAlpn01, instances[1]!.ports.https, instances[2]!.ports.https];

    for (const host of hosts) {
      const serials = await Promise.all(httpsPorts.map(async (port) => (await within(servedCertificate(pebble(), host, port), 30_000, `${host} on ${port}`)).serialNumber));
      expect(new Set(serials).size, host).toBe(1);
    }
    expect(instances.flatMap((instance) => issuing(instance.cli)).sort()).toEqual(hosts);
    for (const host of hosts) {
      expect((await storage.list(`archive/${host}`)).filter((key) => key.includes('/cert'))).toEqual([`archive/${host}/cert1.pem`]);
    }
    // At the CA: one account for the fleet (stored in Redis), one order per name.
    const account = await new AccountStore(copies[0]!, pebble().directoryUrl, storage).find();
    expect(account).toBeDefined();
    expect(await kit.ordersAtTheCa(account!)).toEqual(hosts);

    // Every instance's letsencrypt directory holds certbot's layout of what Redis holds, whoever ordered.
    for (const dir of copies) {
      await waitUntil(async () => (await Promise.all(hosts.map((host) => fs.stat(path.join(dir, 'renewal', `${host}.conf`)).then(() => true, () => false)))).every(Boolean), `the certbot copy in ${dir}`, 10_000);
      for (const host of hosts) {
        expect(await fs.readlink(path.join(dir, 'live', host, 'fullchain.pem'))).toBe('../../archive/' + host + '/fullchain1.pem');
        expect((await fs.readFile(path.join(dir, 'archive', host, 'fullchain1.pem'))).equals((await storage.read(`archive/${host}/fullchain1.pem`))!)).toBe(true);
        expect((await fs.stat(path.join(dir, 'archive', host, 'privkey1.pem'))).mode & 0o777).toBe(0o600);
      }
      const listing = await runCertbot(pebble(), dir, 'certificates');
      for (const host of hosts) expect(listing).toMatch(new RegExp(`Certificate Name: ${host.replace('.', '\\.')}\\n(.*\\n)*?\\s+Expiry Date: .* \\(VALID: 89 days\\)`));
      expect(listing).not.toMatch(/warning|invalid|skipping|error/i);
    }
  }, 120_000);

  it('SIGKILL of the lock holder mid-order leaves nothing half-written; the next instance completes the order', async () => {
    const { storage, env } = await fleet();
    await storage.write(ROUTES_KEY, serializeRoutingTable(table([{ name: 'rk', hosts: ['rk.test'], upstreams: ['http://127.0.0.1:9'] }])));
    // Pebble's validation connects to a listener that never answers: the order stays in flight.
    const sockets = new Set<net.Socket>();
    const silent = net.createServer((socket) => sockets.add(socket));
    await new Promise<void>((resolve) => silent.listen(PEBBLE_PORTS.http01, '127.0.0.1', resolve));
    const closeSilent = (): Promise<void> =>
      new Promise((resolve) => {
        for (const socket of sockets) socket.destroy();
        silent.close(() => resolve());
      });
    resources.defer(async () => {
      if (silent.listening) await closeSilent();
    });
    const [http, https, admin] = (await freePorts(3)) as [number, number, number];
    const first = spawnCli(['serve'], {
      ...env,
      PROXIMATION_LETSENCRYPT_DIR: await kit.letsencryptDir(),
      PROXIMATION_LISTEN_ADDRESS: '127.0.0.1',
      PROXIMATION_HTTP_PORT: String(http),
      PROXIMATION_HTTPS_PORT: String(https),
      PROXIMATION_ADMIN_PORT: String(admin),
    });
    resources.defer(async () => {
      first.child.kill('SIGKILL');
      await first.exited;
    });
    await waitUntil(() => issuing(first).length === 1, 'the first instance to start its order', 20_000);
    await waitUntil(() => sockets.size > 0, "Pebble's validation to reach the silent listener", 20_000);
    first.child.kill('SIGKILL');
    expect((await first.exited).signal).toBe('SIGKILL');
    await closeSilent();
    // Its challenge token is left behind, and no lineage at all: nothing half-written to serve.
    expect(await storage.list('proximation/challenges/http-01')).toHaveLength(1);
    expect([await storage.list('live'), await storage.list('archive')]).toEqual([[], []]);

    // The next instance takes the lock over once the dead holder's lease expires in Redis, and orders.
    const copy = await kit.letsencryptDir();
    const second = await startServeProcess(copy, { ...env, PROXIMATION_HTTP_PORT: String(PEBBLE_PORTS.http01), PROXIMATION_HTTPS_PORT: String(PEBBLE_PORTS.tlsAlpn01) }, 30_000);
    resources.defer(() => second.kill());
    // Stored first (a handshake held over the lease's expiry would hit the TLS handshake timeout).
    await waitUntil(async () => (await storage.list('live/rk.test')).length === 4, 'the second instance to store the certificate', 45_000, 100);
    const leaf = await within(servedCertificate(pebble(), 'rk.test', PEBBLE_PORTS.tlsAlpn01), 10_000, 'the second instance to serve rk.test');
    expect(leaf.subjectAltName).toBe('DNS:rk.test');
    expect(issuing(second.cli)).toEqual(['rk.test']);
    expect(await storage.list('archive/rk.test')).toEqual(['chain1', 'cert1', 'fullchain1', 'privkey1'].map((f) => `archive/rk.test/${f}.pem`).sort());
    await waitUntil(async () => fs.stat(path.join(copy, 'renewal', 'rk.test.conf')).then(() => true, () => false), 'the certbot copy', 10_000);
    const listing = await runCertbot(pebble(), copy, 'certificates');
    expect(listing).toMatch(/Certificate Name: rk\.test\n(.*\n)*?\s+Expiry Date: .* \(VALID: 89 days\)/);
    expect(listing).not.toMatch(/warning|invalid|skipping|error/i);
  }, 120_000);
});
