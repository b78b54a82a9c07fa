// certbot itself against a proximation directory, over the network: it registers the account
// proximation then reuses, asks the CA about the account proximation stored, and renews a lineage
// proximation issued. This file's Pebble refuses no nonces (PEBBLE_WFE_NONCEREJECT=0): Pebble refuses
// 5% on purpose and certbot 2.1 retries a badNonce only once, so with it on a certbot run here failed now
// and then (about 2 full runs in 3) for reasons that are Pebble's test mode, not the layout under test.
// Our own client's badNonce retries stay proven in pebble.test.ts, whose Pebble keeps refusing them.
import { createHash, createPublicKey, type JsonWebKey } from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { readRenewalConf } from '../../src/certs/renewal-conf.js';
import { CertStore } from '../../src/certs/cert-store.js';
import { managed } from '../support/fixtures.js';
import { PEBBLE_PORTS, usePebble } from '../support/pebble.js';
import { waitUntil } from '../support/process.js';
import { pebbleKit } from './pebble-kit.js';

const resources = managed();
const pebble = usePebble({ env: { PEBBLE_AUTHZREUSE: '100', PEBBLE_WFE_NONCEREJECT: '0' } });
const { letsencryptDir, acmeProxy, handshake, certbot, theAccount, ordersAtTheCa } = pebbleKit(resources, pebble);

describe('certbot on a directory proximation keeps, against Pebble', () => {
  it('renews a lineage proximation issued, with the shared account and renewal file, and proximation serves it', async () => {
    const le = await letsencryptDir();
    await acmeProxy(le, ['a.test']);
    const before = await handshake('a.test');
    expect(await certbot(le, 'renew', '--cert-name', 'a.test', '--force-renewal', '--no-random-sleep-on-renew')).toContain('all renewals succeeded');
    expect(await fs.readlink(path.join(le, 'live', 'a.test', 'cert.pem'))).toBe('../../archive/a.test/cert2.pem');
    // proximation serves what certbot wrote once its poll sees it.
    await waitUntil(async () => (await handshake('a.test')).serialNumber !== before.serialNumber, 'the proxy to serve the renewed certificate');
  });

  it("stores one account, reuses certbot's for the same server, and keeps it across restarts", async () => {
    const le = await letsencryptDir();
    await certbot(le, 'register', '--server', pebble().directoryUrl, '--agree-tos', '--email', 'ops@example.com', '--no-eff-email');
    const certbotAccount = await theAccount(le);

    const first = await acmeProxy(le, ['g.test']);
    const issued = await handshake('g.test');
    const store = new CertStore(le);
    expect((await readRenewalConf(store, 'g.test'))?.account).toBe(certbotAccount.id);
    await first.close();

    // A lineage without a renewal file is not known to come from this CA: the restarted proxy replaces
    // it, and Pebble hands back the authorization it validated before.
    await fs.rm(path.join(le, 'renewal', 'g.test.conf'));
    const second = await acmeProxy(le, ['g.test', 'h.test']);
    expect((await handshake('g.test')).serialNumber).not.toBe(issued.serialNumber);
    await handshake('h.test');
    expect(second.logs.some((l) => l.msg === 'ACME authorization already valid')).toBe(true);
    expect(second.logs.some((l) => l.msg === 'ACME account registered')).toBe(false);
    expect((await theAccount(le)).id).toBe(certbotAccount.id);
    expect((await readRenewalConf(store, 'h.test'))?.account).toBe(certbotAccount.id);
    expect(await ordersAtTheCa(certbotAccount)).toEqual(['g.test', 'g.test', 'h.test']);
  });

  it("stores a new account in certbot's layout: id = MD5 of the public key PEM, key 0400, directories 0700", async () => {
    const le = await letsencryptDir();
    await acmeProxy(le, ['i.test']);
    await handshake('i.test');
    const account = await theAccount(le);
    const dir = path.join(le, 'accounts', `127.0.0.1:${PEBBLE_PORTS.acme}`, 'dir', account.id);
    expect(account.dir).toBe(dir);
    const jwk = JSON.parse(await fs.readFile(path.join(dir, 'private_key.json'), 'utf8')) as JsonWebKey;
    const pem = createPublicKey({ key: jwk, format: 'jwk' }).export({ type: 'spki', format: 'pem' });
    expect(createHash('md5').update(pem).digest('hex')).toBe(account.id);
    expect(JSON.parse(await fs.readFile(path.join(dir, 'regr.json'), 'utf8'))).toEqual({ body: {}, uri: account.url });
    expect((await fs.stat(path.join(dir, 'private_key.json'))).mode & 0o777).toBe(0o400);
    for (const d of [dir, path.dirname(dir), path.dirname(path.dirname(dir)), path.join(le, 'accounts')]) {
      expect((await fs.stat(d)).mode & 0o777).toBe(0o700);
    }
    // certbot itself loads it and asks the CA about it.
    expect(await certbot(le, 'show_account', '--server', pebble().directoryUrl)).toContain(`Account URL: ${account.url}`);
  });
});
