// Issuance against a real ACME CA (Pebble), judged by real TLS clients, by Pebble's own records and by
// certbot's listing. One file: Pebble validates on fixed ports, where each test's proxy listens, so these
// tests run one after another. Pebble refuses 5% of nonces here, as it does by default: our client's
// badNonce retries are proven on every order. certbot's own network runs are in certbot-interop.test.ts.
import fs from 'node:fs/promises';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { ariCertId } from '../../src/certs/ari.js';
import { readRenewalConf } from '../../src/certs/renewal-conf.js';
import { CertStore } from '../../src/certs/cert-store.js';
import { httpRequest, httpsRequest, managed, table, echoHandler, writeRoutes } from '../support/fixtures.js';
import { PEBBLE_EAB, PEBBLE_PORTS, acmeProcessEnv, loopbackHttpsIdentity, usePebble } from '../support/pebble.js';
import { freePorts, spawnCli, waitUntil, type CliProcess } from '../support/process.js';
import { pebbleKit } from './pebble-kit.js';

const resources = managed();
// Every valid authorization is reused in later orders of the same account, so that path is always taken.
const pebble = usePebble({ env: { PEBBLE_AUTHZREUSE: '100' } });

const { letsencryptDir, acmeProxy, handshake, certbot, theAccount, ordersAtTheCa } = pebbleKit(resources, pebble);

describe('ACME issuance against Pebble', () => {
  it('obtains certificates for two sites over HTTP-01, into a layout certbot lists', async () => {
    const le = await letsencryptDir();
    const p = await acmeProxy(le, ['a.test', 'b.test']);
    for (const host of ['a.test', 'b.test']) {
      expect((await handshake(host)).subjectAltName).toBe(`DNS:${host}`);
      const res = await httpsRequest({ ...p, ca: pebble().rootPem }, host, { path: '/x' });
      expect(JSON.parse(res.body).url).toBe('/x');
    }
    // Pebble, like Let's Encrypt, validates from several vantage points.
    expect(p.logs.filter((l) => l.msg === 'answering an HTTP-01 challenge').length).toBeGreaterThanOrEqual(2);
    // Tokens are gone once the challenges are done.
    expect(await fs.readdir(path.join(le, 'proximation', 'challenges', 'http-01'))).toEqual([]);

    const store = new CertStore(le);
    const account = await theAccount(le);
    for (const host of ['a.test', 'b.test']) {
      for (const kind of ['cert', 'chain', 'fullchain', 'privkey']) {
        expect(await fs.readlink(path.join(le, 'live', host, `${kind}.pem`))).toBe(`../../archive/${host}/${kind}1.pem`);
      }
      const conf = (await readRenewalConf(store, host))!;
      expect(conf).toMatchObject({ server: pebble().directoryUrl, account: account.id, keyType: 'ecdsa-p256' });
    }

    const listing = await certbot(le, 'certificates');
    expect(listing).toMatch(/Certificate Name: a\.test\n\s+Serial Number: \w+\n\s+Key Type: ECDSA\n\s+Domains: a\.test\n\s+Expiry Date: .* \(VALID: 89 days\)/);
    expect(listing).toContain('Certificate Name: b.test');
    expect(listing).not.toMatch(/warning|invalid|skipping|error/i);
    // That certbot renews such a lineage is in certbot-interop.test.ts.
  });

  it('obtains certificates over TLS-ALPN-01, with RSA keys and a profile on request', async () => {
    const le = await letsencryptDir();
    const p = await acmeProxy(le, ['c.test', 'd.test'], { acmeChallenge: 'tls-alpn-01', acmeKeyType: 'rsa-2048', acmeProfile: 'tlsserver' });
    for (const host of ['c.test', 'd.test']) {
      const leaf = await handshake(host);
      expect(leaf.subjectAltName).toBe(`DNS:${host}`);
      expect(leaf.publicKey.asymmetricKeyType).toBe('rsa');
      expect((await httpsRequest({ ...p, ca: pebble().rootPem }, host)).status).toBe(200);
      expect((await readRenewalConf(new CertStore(le), host))?.keyType).toBe('rsa-2048');
    }
    expect(p.logs.filter((l) => l.msg === 'answering a TLS-ALPN-01 challenge').length).toBeGreaterThanOrEqual(2);
    expect(p.logs.filter((l) => l.msg === 'answering an HTTP-01 challenge')).toHaveLength(0);
    expect(await fs.readdir(path.join(le, 'proximation', 'challenges', 'tls-alpn-01'))).toEqual([]);
    expect(await certbot(le, 'certificates')).toMatch(/Certificate Name: c\.test\n\s+Serial Number: \w+\n\s+Key Type: RSA/);
  });

  it('orders only names in the routing table, as soon as they appear, with an EAB-bound account', async () => {
    const le = await letsencryptDir();
    const p = await acmeProxy(le, ['e.test'], { acmeEabKid: PEBBLE_EAB.kid, acmeEabHmacKey: PEBBLE_EAB.hmacKey });
    await handshake('e.test');
    // A name the proxy does not route gets no certificate, by SNI or by an HTTP request.
    await expect(handshake('stranger.test')).rejects.toThrow();
    expect((await httpRequest(PEBBLE_PORTS.http01, 'stranger.test', '/')).status).toBe(404);
    const upstream = await resources.upstream(echoHandler());
    await writeRoutes(p.config.routesPath, table([{ name: 'e', hosts: ['e.test'], upstreams: [upstream.origin] }, { name: 'f', hosts: ['f.test'], upstreams: [upstream.origin] }], 2));
    await p.waitForLog((l) => l.msg === 'routing table loaded' && l.generation === 2);
    await handshake('f.test');
    expect(await ordersAtTheCa(await theAccount(le))).toEqual(['e.test', 'f.test']);
  });

  it('fails fast with a clear error when the ACME server certificate is not trusted', async () => {
    const le = await letsencryptDir();
    const started = Date.now();
    const p = await acmeProxy(le, ['j.test'], { acmeCaCerts: undefined });
    const line = await p.waitForLog((l) => l.msg === 'could not obtain a certificate; will retry');
    expect(Date.now() - started).toBeLessThan(5000);
    expect(line.err).toContain("the ACME server's HTTPS certificate is not trusted");
    expect(line.err).toContain(pebble().directoryUrl);
    expect(line.err).toContain('PROXIMATION_ACME_CA_CERTS');
    await expect(handshake('j.test')).rejects.toThrow();
  });

  it("reports the CA's refusal with its message: an external account binding with the wrong key", async () => {
    const le = await letsencryptDir();
    const p = await acmeProxy(le, ['k.test'], { acmeEabKid: PEBBLE_EAB.kid, acmeEabHmacKey: 'd3Jvbmcta2V5LXdyb25nLWtleS13cm9uZy1rZXktd3Jvbmcta2V5' });
    const line = await p.waitForLog((l) => l.msg === 'could not obtain a certificate; will retry');
    expect(line.err).toContain(`ordering a certificate for k.test from ${pebble().directoryUrl} failed`);
    expect(line.err).toContain('external account binding');
    await expect(fs.readdir(path.join(le, 'accounts'))).rejects.toThrow();
  });

  it('backs off after a failed order, across a restart, and keeps serving the certificate it has', async () => {
    const le = await letsencryptDir();
    const first = await acmeProxy(le, ['l.test']);
    const issued = await handshake('l.test');
    await first.close();

    // Another CA that cannot be reached: the lineage is not its own, so the proxy orders, and fails.
    const [closedPort] = await freePorts(1);
    const downCa = { acmeDirectory: `https://127.0.0.1:${closedPort}/dir` };
    const second = await acmeProxy(le, ['l.test'], downCa);
    const failure = await second.waitForLog((l) => l.msg === 'could not obtain a certificate; will retry');
    expect(failure).toMatchObject({ host: 'l.test', failures: 1 });
    expect(failure.err).toContain(downCa.acmeDirectory);
    const stateFile = path.join(le, 'proximation', 'state', 'l.test.json');
    const state = JSON.parse(await fs.readFile(stateFile, 'utf8')) as { failures: number; nextAttemptAt: string; lastError: string };
    expect(state.failures).toBe(1);
    const wait = Date.parse(state.nextAttemptAt) - Date.parse(failure.time as unknown as string);
    expect(wait).toBeGreaterThanOrEqual(59_000);
    expect(wait).toBeLessThan(70_000);
    expect((await handshake('l.test')).serialNumber).toBe(issued.serialNumber);
    await second.close();

    // A restarted instance reads the backoff: it serves the old certificate and does not order. Absence
    // has no event to wait for, so it gets a number of poll rounds (200 ms each) to prove it.
    const third = await acmeProxy(le, ['l.test'], downCa);
    expect((await handshake('l.test')).serialNumber).toBe(issued.serialNumber);
    await new Promise((resolve) => setTimeout(resolve, 1000));
    expect(third.logs.filter((l) => l.msg === 'issuing certificate')).toEqual([]);
    expect(JSON.parse(await fs.readFile(stateFile, 'utf8'))).toEqual(state);
  });

  it("honours a rate-limited CA's Retry-After and logs its message with the name", async () => {
    const le = await letsencryptDir();
    const identity = await loopbackHttpsIdentity();
    const limited = https.createServer({ cert: identity.certPem, key: identity.keyPem }, (_req, res) => {
      res.writeHead(429, { 'content-type': 'application/problem+json', 'retry-after': '7200' });
      res.end(JSON.stringify({ type: 'urn:ietf:params:acme:error:rateLimited', detail: 'too many new orders recently' }));
    });
    await new Promise<void>((resolve) => limited.listen(0, '127.0.0.1', resolve));
    resources.defer(() => new Promise((resolve) => limited.close(() => resolve())));
    const caFile = path.join(path.dirname(le), 'limited-ca.pem');
    await fs.writeFile(caFile, identity.caPem);
    const started = Date.now();
    const p = await acmeProxy(le, ['r.test'], { acmeDirectory: `https://127.0.0.1:${(limited.address() as AddressInfo).port}/dir`, acmeCaCerts: caFile });
    const line = await p.waitForLog((l) => l.msg === 'could not obtain a certificate; will retry');
    expect(line).toMatchObject({ host: 'r.test', code: 'ERR_ACME_RATE_LIMITED' });
    expect(line.err).toContain('too many new orders recently');
    const nextAttempt = Date.parse(line.nextAttemptAt as string) - started;
    expect(nextAttempt).toBeGreaterThan(7_100_000);
    expect(nextAttempt).toBeLessThan(7_300_000);
  });

  it('renews inside the window ARI suggests, naming the certificate it replaces', async () => {
    const le = await letsencryptDir();
    const identity = await loopbackHttpsIdentity();
    const asked: string[] = [];
    const directory = JSON.parse(await getText(pebble().directoryUrl, pebble().caCertsPem)) as Record<string, unknown>;
    // RFC 9773 in front of Pebble 2.4, which has no ARI: the first certificate's window is over, later ones' far ahead.
    const responder = https.createServer({ cert: identity.certPem, key: identity.keyPem }, (req, res) => {
      const origin = `https://127.0.0.1:${(responder.address() as AddressInfo).port}`;
      res.setHeader('content-type', 'application/json');
      if (req.url === '/dir') return res.end(JSON.stringify({ ...directory, renewalInfo: `${origin}/renewal-info` }));
      const id = req.url!.slice('/renewal-info/'.length);
      if (!asked.includes(id)) asked.push(id);
      const hour = 3_600_000;
      const start = asked.indexOf(id) === 0 ? Date.now() - 2 * hour : Date.now() + 30 * 24 * hour;
      res.end(JSON.stringify({ suggestedWindow: { start: new Date(start).toISOString(), end: new Date(start + hour).toISOString() } }));
    });
    await new Promise<void>((resolve) => responder.listen(0, '127.0.0.1', resolve));
    resources.defer(() => new Promise((resolve) => responder.close(() => resolve())));
    const caFile = path.join(path.dirname(le), 'ari-ca.pem');
    await fs.writeFile(caFile, pebble().caCertsPem + identity.caPem);

    const p = await acmeProxy(le, ['s.test'], { acmeDirectory: `https://127.0.0.1:${(responder.address() as AddressInfo).port}/dir`, acmeCaCerts: caFile });
    const first = await handshake('s.test');
    await waitUntil(async () => (await handshake('s.test')).serialNumber !== first.serialNumber, 'the renewal the ARI window asks for');
    await waitUntil(() => asked.length === 2, 'the ARI check of the renewed certificate');
    const firstPem = await fs.readFile(path.join(le, 'archive', 's.test', 'cert1.pem'), 'utf8');
    expect(asked[0]).toBe(ariCertId(firstPem));
    expect(asked[1]).toBe(ariCertId(await fs.readFile(path.join(le, 'archive', 's.test', 'cert2.pem'), 'utf8')));
    const orders = p.logs.filter((l) => l.msg === 'ACME order created');
    expect(orders.map((l) => l.replaces)).toEqual([undefined, asked[0]]);
    expect((await fs.readdir(path.join(le, 'archive', 's.test'))).filter((f) => f.startsWith('cert'))).toEqual(['cert1.pem', 'cert2.pem']);
  });

  it('`proximation renew` with no proxy running answers HTTP-01 itself, then frees the port; with the port taken it leaves the challenges to the proxy', async () => {
    const le = await letsencryptDir();
    await writeRoutes(path.join(le, 'proximation', 'routes.json'), table([{ name: 'lone', hosts: ['lone.test'] }]));
    const env = { ...acmeProcessEnv(pebble(), le), PROXIMATION_HTTP_PORT: String(PEBBLE_PORTS.http01), PROXIMATION_LOG_FORMAT: 'json' };
    const alone = spawnCli(['renew'], env);
    expect((await alone.exited).code, alone.stderr()).toBe(0);
    expect(alone.stdout()).toMatch(/^lone\.test: renewed \(expires .*\)\nAll renewals succeeded or were not due\.\n$/);
    expect(alone.stderr()).toContain('answering HTTP-01 challenges on the HTTP port for this run (no proxy listens there)');
    expect(alone.stderr()).toContain('answering an HTTP-01 challenge');
    expect(await fs.readdir(path.join(le, 'archive', 'lone.test'))).toContain('cert1.pem');

    // A proxy holds the port now (the one renew released): renew leaves the validation to it.
    const p = await acmeProxy(le, ['lone.test']);
    await handshake('lone.test');
    const beside = spawnCli(['renew', '--force-renewal'], env);
    expect((await beside.exited).code, beside.stderr()).toBe(0);
    expect(beside.stderr()).toContain('the HTTP port is in use: a proxy on this directory is expected to answer');
    expect(beside.stdout()).toMatch(/^lone\.test: renewed /);
    // Pebble reuses the authorization here (PEBBLE_AUTHZREUSE), so whether the proxy was asked is not checked.
    expect(p.server.http.port).toBe(PEBBLE_PORTS.http01);
  });

  it('`proximation renew`: nothing due, dry run, forced on two processes at once with a deploy hook, CA down; then `certs --json`', async () => {
    const le = await letsencryptDir();
    const p = await acmeProxy(le, ['m.test', 'n.test']);
    await handshake('m.test');
    await handshake('n.test');
    const env = {
      ...acmeProcessEnv(pebble(), le),
      PROXIMATION_LOG_FORMAT: 'json',
    };
    const renew = async (args: string[], extraEnv: Record<string, string> = {}): Promise<CliProcess & { code: number | null }> => {
      const cli = spawnCli(['renew', ...args], { ...env, ...extraEnv });
      return { ...cli, code: (await cli.exited).code };
    };

    const notDue = await renew([]);
    expect(notDue.code, notDue.stderr()).toBe(0);
    expect(notDue.stdout()).toMatch(/^m\.test: not due .*\nn\.test: not due /);

    // A dry run orders from the CA and leaves the store byte for byte as it was.
    const before = await snapshot(le);
    const dry = await renew(['--dry-run', '--cert-name', 'm.test']);
    expect(dry.code, dry.stderr()).toBe(0);
    expect(dry.stdout()).toContain('m.test: dry run: order succeeded, nothing stored');
    expect(dry.stderr()).toContain('ACME certificate issued');
    expect(await snapshot(le)).toEqual(before);

    // Every instance's cron at once: one new version per name, one hook run per name, both succeed.
    const hooks = path.join(path.dirname(le), 'hooks');
    await fs.mkdir(hooks);
    const hook = `printf '%s|%s\\n' "$RENEWED_LINEAGE" "$RENEWED_DOMAINS" >> ${hooks}/"$(basename "$RENEWED_LINEAGE")"`;
    const both = await Promise.all([0, 1].map(() => renew(['--force-renewal', '--deploy-hook', hook])));
    for (const run of both) expect(run.code, run.stderr()).toBe(0);
    expect(both.map((run) => run.stdout()).join('')).toMatch(/m\.test: renewed by another instance|n\.test: renewed by another instance/);
    for (const host of ['m.test', 'n.test']) {
      expect((await fs.readdir(path.join(le, 'archive', host))).filter((f) => f.startsWith('cert')).sort()).toEqual(['cert1.pem', 'cert2.pem']);
      expect(await fs.readFile(path.join(hooks, host), 'utf8')).toBe(`${path.join(le, 'live', host)}|${host}\n`);
    }

    // The CA is down: exit 1, the failure recorded for the next run and for `certs`.
    const [closedPort] = await freePorts(1);
    const down = await renew(['--force-renewal', '--cert-name', 'm.test'], { PROXIMATION_ACME_DIRECTORY: `https://127.0.0.1:${closedPort}/dir` });
    expect(down.code).toBe(1);
    expect(down.stdout()).toMatch(/^m\.test: failed: .*next attempt after /);
    expect(down.stdout()).toContain('1 of 1 renewals failed.');

    const certs = spawnCli(['certs', '--json'], env);
    expect((await certs.exited).code, certs.stderr()).toBe(0);
    const report = JSON.parse(certs.stdout()) as Record<string, unknown>[];
    expect(report.map((r) => r.name)).toEqual(['m.test', 'n.test']);
    for (const entry of report) {
      expect(entry).toMatchObject({ path: path.join(le, 'live', entry.name as string), domains: [entry.name], daysLeft: 89, status: 'valid', routed: true });
      expect(Object.keys(entry).sort()).toEqual(['daysLeft', 'domains', 'expiry', 'failures', 'issuer', 'lastError', 'name', 'nextAttempt', 'nextRenewal', 'path', 'routed', 'serialNumber', 'status']);
      expect(Date.parse(entry.nextRenewal as string)).toBeGreaterThan(Date.now() + 55 * 86_400_000);
    }
    expect(report[0]).toMatchObject({ failures: 1, lastError: expect.stringContaining(`127.0.0.1:${closedPort}`) as unknown });
    expect(report[1]).toMatchObject({ failures: 0, lastError: null });
    expect(p.logs.filter((l) => l.msg === 'issuing certificate')).toHaveLength(2);
  });
});

function getText(url: string, ca: string): Promise<string> {
  return new Promise((resolve, reject) => {
    https.get(url, { ca, agent: false }, (res) => {
      let body = '';
      res.on('data', (c: Buffer) => (body += c.toString()));
      res.on('end', () => resolve(body));
    }).on('error', reject);
  });
}

/** Everything under archive/, live/ and renewal/: file contents and link targets, for byte-for-byte comparison. */
async function snapshot(le: string): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  for (const top of ['archive', 'live', 'renewal']) {
    for (const entry of await fs.readdir(path.join(le, top), { recursive: true, withFileTypes: true })) {
      const file = path.join(entry.parentPath, entry.name);
      if (entry.isSymbolicLink()) out[file] = `-> ${await fs.readlink(file)}`;
      else if (entry.isFile()) out[file] = await fs.readFile(file, 'base64');
    }
  }
  return out;
}
