// Renewal by the lifetime rule, without ARI (Pebble 2.4 offers none), of a real short-lived certificate:
// this file's Pebble issues certificates that live LIFETIME_S seconds (its certificateValidityPeriod),
// so a running proxy must renew one by itself once half its lifetime is left (the rule for
// certificates shorter than 10 days), not before, and serve the new one without a restart. A file of
// its own because the lifetime is a setting of Pebble, not of the order.
import { X509Certificate } from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { echoHandler, managed, table, tempDir } from '../support/fixtures.js';
import { PEBBLE_PORTS, servedCertificate, usePebble } from '../support/pebble.js';
import { waitUntil } from '../support/process.js';

const LIFETIME_S = 40;
/** How often the proxy checks its certificates (PROXIMATION_CERT_POLL): a renewal may start this late. */
const CHECK_MS = 250;
/** Room on a loaded machine between the check that finds the certificate due and the log of its order. */
const SLACK_MS = 5_000;

const resources = managed();
const pebble = usePebble({ certificateLifetimeS: LIFETIME_S });

describe('renewal of a short-lived certificate by the lifetime rule', () => {
  it('renews when half the lifetime is left, not before, and serves the new certificate without a restart', async () => {
    const dir = await tempDir('proximation-short-lived-');
    resources.defer(() => dir.close());
    const le = path.join(dir.path, 'le');
    const upstream = await resources.upstream(echoHandler());
    const p = await resources.proxy(table([{ name: 'r', hosts: ['r.test'], upstreams: [upstream.origin] }]), {
      letsencryptDir: le,
      issuer: 'acme',
      acmeDirectory: pebble().directoryUrl,
      acmeCaCerts: pebble().caCertsPath,
      httpPort: String(PEBBLE_PORTS.http01),
      httpsPort: String(PEBBLE_PORTS.tlsAlpn01),
      certPollMs: `${CHECK_MS}ms`,
    });

    const first = await servedCertificate(pebble(), 'r.test');
    const notBefore = Date.parse(first.validFrom);
    const lifetimeMs = Date.parse(first.validTo) - notBefore;
    // X.509 times have whole seconds, and Pebble's notAfter is the last second of validity.
    expect(Math.abs(lifetimeMs - LIFETIME_S * 1000)).toBeLessThanOrEqual(1000);
    const due = notBefore + lifetimeMs / 2;

    // The proxy checked every CHECK_MS since the first issuance; the first renewal it starts is at the due time.
    const renewal = await p.waitForLog((l) => l.msg === 'issuing certificate' && l.reason === 'due', due + SLACK_MS - Date.now());
    const startedAt = Date.parse(renewal.time as string);
    expect(startedAt).toBeGreaterThanOrEqual(due);
    expect(startedAt).toBeLessThan(due + SLACK_MS);

    // The same process serves the new certificate, which chains to Pebble's root and is the one stored.
    await waitUntil(async () => (await servedCertificate(pebble(), 'r.test')).serialNumber !== first.serialNumber, 'the renewed certificate to be served', SLACK_MS);
    const second = await servedCertificate(pebble(), 'r.test');
    expect(second.serialNumber).toBe(new X509Certificate(await fs.readFile(path.join(le, 'live', 'r.test', 'cert.pem'))).serialNumber);
    expect(Date.parse(second.validFrom)).toBeGreaterThanOrEqual(Math.floor(due / 1000) * 1000);
    expect(p.logs.filter((l) => l.msg === 'proximation is serving')).toHaveLength(1);
    // Without ARI the order names no certificate it replaces; nothing was ordered in between.
    expect(p.logs.filter((l) => l.msg === 'ACME order created').map((l) => l.replaces)).toEqual([undefined, undefined]);
    expect(p.logs.filter((l) => l.msg === 'issuing certificate').map((l) => l.reason)).toEqual(['missing', 'due']);
  }, (LIFETIME_S + 30) * 1000);
});
