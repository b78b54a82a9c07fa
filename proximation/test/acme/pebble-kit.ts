/**
 * What the Pebble test files share: a state directory per test, a proxy that orders from Pebble on the
 * ports it validates, a handshake that trusts only Pebble's root, certbot on that directory, and the
 * account and its orders as Pebble has them. `pebbleKit` takes the file's resources and Pebble.
 */
import type { X509Certificate } from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';
import acme, { type Order } from 'acme-client';
import { pino } from 'pino';
import { expect } from 'vitest';
import { AccountStore, type AcmeAccount } from '../../src/certs/account-store.js';
import { openAcmeTransport } from '../../src/certs/acme-transport.js';
import type { Config } from '../../src/config.js';
import { echoHandler, managed, table, tempDir, type Proxy } from '../support/fixtures.js';
import { PEBBLE_PORTS, runCertbot, servedCertificate, type Pebble } from '../support/pebble.js';

export function pebbleKit(resources: ReturnType<typeof managed>, pebble: () => Pebble) {
  const siteOf = (host: string): string => host.split('.')[0]!;
  return {
    /** A directory for certbot's layout that outlives one proxy (restarts, certbot runs). */
    async letsencryptDir(): Promise<string> {
      const dir = await tempDir('proximation-acme-');
      resources.defer(() => dir.close());
      return path.join(dir.path, 'le');
    },

    async acmeProxy(le: string, hosts: string[], settings: Partial<Record<keyof Config, string>> = {}): Promise<Proxy> {
      const upstream = await resources.upstream(echoHandler());
      return resources.proxy(table(hosts.map((host) => ({ name: siteOf(host), hosts: [host], upstreams: [upstream.origin] }))), {
        letsencryptDir: le,
        issuer: 'acme',
        acmeDirectory: pebble().directoryUrl,
        acmeCaCerts: pebble().caCertsPath,
        acmeEmail: 'ops@example.com',
        httpPort: String(PEBBLE_PORTS.http01),
        httpsPort: String(PEBBLE_PORTS.tlsAlpn01),
        certPollMs: '200ms',
        ...settings,
      });
    },

    handshake: (host: string): Promise<X509Certificate> => servedCertificate(pebble(), host),

    certbot: (le: string, ...args: string[]): Promise<string> => runCertbot(pebble(), le, ...args),

    async theAccount(le: string): Promise<AcmeAccount> {
      const store = new AccountStore(le, pebble().directoryUrl);
      expect(await fs.readdir(store.serverDir)).toHaveLength(1);
      return (await store.find())!;
    },

    /** The names of every order the account placed, as Pebble has them (RFC 8555 7.1.2.1 orders list). */
    async ordersAtTheCa(account: AcmeAccount): Promise<string[]> {
      const transport = await openAcmeTransport({ directoryUrl: pebble().directoryUrl, caCertsPath: pebble().caCertsPath, log: pino({ level: 'silent' }) });
      return transport.run(async () => {
        const client = new acme.Client({ directoryUrl: pebble().directoryUrl, accountKey: account.keyPem, accountUrl: account.url });
        const { orders: listUrl } = await client.updateAccount();
        // acme-client has no call for the orders list; its signed POST-as-GET does it.
        const api = (client as unknown as { api: { apiRequest(url: string, payload: null, codes: number[]): Promise<{ data: { orders: string[] } }> } }).api;
        const { data } = await api.apiRequest(listUrl, null, [200]);
        const orders = await Promise.all(data.orders.map((url) => client.getOrder({ url } as Order)));
        return orders.map((order) => order.identifiers.map((id) => id.value).join(',')).sort();
      });
    },
  };
}
