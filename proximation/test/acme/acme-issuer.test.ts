// The ACME issuer's and transport's answers when the CA is untrusted, unreachable, rate-limiting or wants
// what is not configured, how they poll and reuse nonces, against real loopback HTTPS servers standing in
// for a CA; and which stored lineages count as the issuer's. The real issuance flows run against Pebble,
// in pebble.test.ts.
import fs from 'node:fs/promises';
import type http from 'node:http';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import acme from 'acme-client';
import { pino } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { isProximationError } from '@proximation/shared';
import { openAcmeIssuer, type AcmeIssuerSettings } from '../../src/certs/acme-issuer.js';
import { POLL_FIRST_MS, pollResource } from '../../src/certs/acme-poll.js';
import { AcmeRateLimitedError } from '../../src/certs/acme-rate-limited-error.js';
import { openAcmeTransport } from '../../src/certs/acme-transport.js';
import { CertStore } from '../../src/certs/cert-store.js';
import { ChallengeStore } from '../../src/certs/challenge-store.js';
import { LocalCa } from '../../src/certs/local-ca.js';
import { writeRenewalConf } from '../../src/certs/renewal-conf.js';
import { tempDir } from '../support/fixtures.js';
import { freePorts } from '../support/process.js';
import { loopbackHttpsIdentity } from '../support/pebble.js';

const silent = pino({ level: 'silent' });
let cleanup: (() => Promise<void>)[] = [];
afterEach(async () => {
  while (cleanup.length > 0) await cleanup.pop()!();
});

/** A loopback HTTPS server standing in for a CA until the test ends: its origin, and a CA file that trusts it. */
async function loopbackCa(handler: http.RequestListener): Promise<{ origin: string; caFile: string }> {
  const identity = await loopbackHttpsIdentity();
  const server = https.createServer({ cert: identity.certPem, key: identity.keyPem }, handler);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  cleanup.push(() => new Promise((resolve) => server.close(() => resolve())));
  const dir = await tempDir('proximation-transport-');
  cleanup.push(() => dir.close());
  const caFile = path.join(dir.path, 'ca.pem');
  await fs.writeFile(caFile, identity.caPem);
  return { origin: `https://127.0.0.1:${(server.address() as AddressInfo).port}`, caFile };
}

/** A CA answering every request with `status` and `body`; resolves with its directory URL and CA file. */
async function fakeCa(status: number, body: unknown, headers: Record<string, string> = {}): Promise<{ directoryUrl: string; caFile: string }> {
  const { origin, caFile } = await loopbackCa((_req, res) => {
    res.writeHead(status, { 'content-type': 'application/json', ...headers });
    res.end(JSON.stringify(body));
  });
  return { directoryUrl: `${origin}/dir`, caFile };
}

interface ScriptedCa {
  directoryUrl: string;
  caFile: string;
  resourceUrl: string;
  /** When each POST-as-GET of the resource was answered (epoch ms). */
  polls: number[];
  newNonceFetches: number;
  /** Good nonces refused on purpose (as Pebble refuses 5%), and nonces that were never issued or already used. */
  refused: number;
  unknownNonces: number;
}

/**
 * A loopback HTTPS server speaking just enough ACME to poll one resource: a directory, newNonce (HEAD),
 * and the resource, whose answers are `answers` in turn (the last one repeats). Every response but the
 * directory carries a fresh Replay-Nonce; a signed request must use a nonce issued and not yet used, else it gets badNonce
 * (RFC 8555 6.5), and so does every `refuseEvery`th good one.
 */
async function scriptedCa(answers: { status: string; retryAfter?: string }[], refuseEvery = 0): Promise<ScriptedCa> {
  const issued = new Set<string>();
  let serial = 0;
  let good = 0;
  const nonce = (): string => {
    const value = `n${++serial}`;
    issued.add(value);
    return value;
  };
  const ca = { polls: [] as number[], newNonceFetches: 0, refused: 0, unknownNonces: 0 };
  const { origin, caFile } = await loopbackCa((req, res) => {
    const reply = (status: number, body: unknown, headers: Record<string, string> = {}): void => {
      res.writeHead(status, { 'content-type': 'application/json', 'replay-nonce': nonce(), ...headers }).end(JSON.stringify(body));
    };
    // The directory carries no nonce (RFC 8555 asks for one on POST responses only).
    if (req.method === 'GET') return res.end(JSON.stringify({ newNonce: `${origin}/nonce`, newAccount: `${origin}/account`, newOrder: `${origin}/order` }));
    if (req.method === 'HEAD') {
      ca.newNonceFetches++;
      return reply(200, '');
    }
    let body = '';
    req.on('data', (chunk: Buffer) => (body += chunk.toString()));
    req.on('end', () => {
      const used = (JSON.parse(Buffer.from((JSON.parse(body) as { protected: string }).protected, 'base64url').toString()) as { nonce: string }).nonce;
      if (!issued.delete(used)) ca.unknownNonces++;
      else if (refuseEvery > 0 && ++good % refuseEvery === 0) ca.refused++;
      else {
        ca.polls.push(Date.now());
        const answer = answers[Math.min(ca.polls.length, answers.length) - 1]!;
        return reply(200, { status: answer.status }, answer.retryAfter === undefined ? {} : { 'retry-after': answer.retryAfter });
      }
      reply(400, { type: 'urn:ietf:params:acme:error:badNonce', detail: 'JWS has an invalid anti-replay nonce' });
    });
  });
  return Object.assign(ca, { directoryUrl: `${origin}/dir`, caFile, resourceUrl: `${origin}/authz/1` });
}

/** Runs `pollResource` on the scripted CA's resource, through one transport, with an account acme-client already knows. */
async function poller(ca: ScriptedCa): Promise<() => Promise<{ status: string }>> {
  const transport = await openAcmeTransport({ directoryUrl: ca.directoryUrl, caCertsPath: ca.caFile, log: silent });
  const client = new acme.Client({ directoryUrl: ca.directoryUrl, accountKey: await acme.crypto.createPrivateEcdsaKey(), accountUrl: `${ca.directoryUrl}/account/1` });
  return () => transport.run(() => pollResource<{ status: string }>(client, ca.resourceUrl, ['pending']));
}

/** What acme-client's first request (reading the directory) gives through a transport. */
async function readDirectory(directoryUrl: string, caCertsPath: string | undefined): Promise<unknown> {
  const transport = await openAcmeTransport({ directoryUrl, caCertsPath, log: silent });
  const client = new acme.Client({ directoryUrl, accountKey: await acme.crypto.createPrivateEcdsaKey() });
  return transport.run(() => client.getTermsOfServiceUrl());
}

describe('AcmeTransport', () => {
  it("trusts the bundle's CA in addition to Node's roots, and names the directory and TLS error fast when it is missing", async () => {
    const ca = await fakeCa(200, { meta: { termsOfService: 'https://ca.test/tos' } });
    expect(await readDirectory(ca.directoryUrl, ca.caFile)).toBe('https://ca.test/tos');
    const started = Date.now();
    const err = await readDirectory(ca.directoryUrl, undefined).catch((e: unknown) => e);
    expect(Date.now() - started).toBeLessThan(2000);
    expect(isProximationError(err, 'ERR_ACME_TLS_UNTRUSTED')).toBe(true);
    expect((err as Error).message).toContain(`GET ${ca.directoryUrl} failed`);
    expect((err as Error).message).toContain('UNABLE_TO_VERIFY_LEAF_SIGNATURE');
    expect((err as Error).message).toContain('PROXIMATION_ACME_CA_CERTS');
  });

  it('reports an unreachable CA at once instead of retrying for 75 s', async () => {
    const [port] = await freePorts(1);
    const directoryUrl = `https://127.0.0.1:${port}/dir`;
    const started = Date.now();
    const err = await readDirectory(directoryUrl, undefined).catch((e: unknown) => e);
    expect(Date.now() - started).toBeLessThan(2000);
    expect(isProximationError(err, 'ERR_ACME_UNREACHABLE')).toBe(true);
    expect((err as Error).message).toContain('ECONNREFUSED');
    expect((err as Error).message).toContain(directoryUrl);
  });

  it("turns a 429 into a rate-limit error with the CA's message and Retry-After, without sleeping through it", async () => {
    const ca = await fakeCa(429, { type: 'urn:ietf:params:acme:error:rateLimited', detail: 'too many certificates (5) already issued for this exact set of identifiers' }, { 'retry-after': '3600' });
    const started = Date.now();
    const err = await readDirectory(ca.directoryUrl, ca.caFile).catch((e: unknown) => e);
    expect(Date.now() - started).toBeLessThan(2000);
    expect(err).toBeInstanceOf(AcmeRateLimitedError);
    expect((err as AcmeRateLimitedError).code).toBe('ERR_ACME_RATE_LIMITED');
    expect((err as Error).message).toContain('too many certificates (5) already issued');
    expect((err as AcmeRateLimitedError).retryAfter!.getTime()).toBeGreaterThan(started + 3_590_000);
  });

  it("signs with the nonce of the last response, never one twice, nor a badNonce's (acme-client retries with that)", async () => {
    const ca = await scriptedCa([{ status: 'pending' }, { status: 'valid' }], 2);
    const poll = await poller(ca);
    expect(await poll()).toEqual({ status: 'valid' });
    expect(ca.refused).toBe(1);
    expect(ca.newNonceFetches).toBe(1);
    // One nonce is left over: of three polls at once, two fetch their own.
    expect(await Promise.all([poll(), poll(), poll()])).toEqual(Array(3).fill({ status: 'valid' }));
    expect(ca.newNonceFetches).toBe(3);
    expect(ca.unknownNonces).toBe(0);
  });

  it('refuses a CA bundle that is missing or holds no certificate, naming the variable and file', async () => {
    const dir = await tempDir('proximation-transport-');
    cleanup.push(() => dir.close());
    const empty = path.join(dir.path, 'empty.pem');
    await fs.writeFile(empty, 'not a certificate\n');
    for (const [file, problem] of [[empty, 'it holds no PEM certificate'], [path.join(dir.path, 'missing.pem'), 'cannot read it']] as const) {
      await expect(openAcmeTransport({ directoryUrl: 'https://127.0.0.1:1/dir', caCertsPath: file, log: silent })).rejects.toThrow(
        `PROXIMATION_ACME_CA_CERTS=${file}: ${problem}`,
      );
    }
  });
});

describe('pollResource', () => {
  it("asks first after a short interval, then waits as long as the CA's Retry-After says, then backs off from where it was", async () => {
    const ca = await scriptedCa([{ status: 'pending', retryAfter: '1' }, { status: 'pending' }, { status: 'valid' }]);
    const poll = await poller(ca);
    const started = Date.now();
    expect(await poll()).toEqual({ status: 'valid' });
    const [first, second, third] = ca.polls as [number, number, number];
    expect(first - started).toBeGreaterThanOrEqual(POLL_FIRST_MS);
    expect(first - started).toBeLessThan(POLL_FIRST_MS + 1000);
    expect(second - first).toBeGreaterThanOrEqual(1000);
    expect(third - second).toBeGreaterThanOrEqual(POLL_FIRST_MS * 1.5);
    expect(third - second).toBeLessThan(1000);
  });

  it('gives up at once, naming the resource and its status, when the Retry-After points past its deadline', async () => {
    const ca = await scriptedCa([{ status: 'pending', retryAfter: '3600' }]);
    await expect((await poller(ca))()).rejects.toMatchObject({ code: 'ERR_ACME_POLL_TIMEOUT', message: expect.stringContaining(`${ca.resourceUrl} is still pending after 0 s of polling`) });
    expect(ca.polls).toHaveLength(1);
  });
});

/** An ACME issuer with its state in a fresh temp dir. */
async function issuer(settings: Partial<AcmeIssuerSettings> & { directoryUrl: string }) {
  const dir = await tempDir('proximation-issuer-');
  cleanup.push(() => dir.close());
  const store = new CertStore(path.join(dir.path, 'le'));
  const acmeIssuer = await openAcmeIssuer({
    store,
    challenges: new ChallengeStore(path.join(dir.path, 'le')),
    log: silent,
    settings: { email: undefined, caCertsPath: undefined, profile: undefined, eab: undefined, keyType: 'ecdsa-p256', challenge: 'http-01',
      dns: { provider: undefined, hookTimeoutMs: 1000, propagation: { resolvers: undefined, authoritativePort: 53, timeoutMs: 1000 } }, ...settings },
  });
  return { issuer: acmeIssuer, store, dir: dir.path };
}

describe('AcmeIssuer', () => {
  it('refuses a profile the directory does not offer, and an account without the EAB the CA requires, before ordering anything', async () => {
    const ca = await fakeCa(200, { newAccount: 'https://127.0.0.1:1/new-acct', meta: { externalAccountRequired: true, profiles: { classic: 'x', shortlived: 'y' } } });
    const profiled = await issuer({ directoryUrl: ca.directoryUrl, caCertsPath: ca.caFile, profile: 'tlsserver' });
    await expect(profiled.issuer.issue(['a.test'])).rejects.toThrow(`PROXIMATION_ACME_PROFILE=tlsserver: ${ca.directoryUrl} offers the profiles classic, shortlived`);
    const unbound = await issuer({ directoryUrl: ca.directoryUrl, caCertsPath: ca.caFile });
    const err = await unbound.issuer.issue(['a.test']).catch((e: unknown) => e);
    expect(isProximationError(err, 'ERR_ACME_EAB_REQUIRED')).toBe(true);
    expect((err as Error).message).toContain('PROXIMATION_ACME_EAB_KID');
    await expect(fs.readdir(path.join(unbound.dir, 'le', 'accounts'))).rejects.toThrow();
  });

  it('owns exactly the lineages whose renewal file names its directory as server', async () => {
    const { issuer: acmeIssuer, store, dir } = await issuer({ directoryUrl: 'https://ca.test/dir' });
    const ca = await LocalCa.open(path.join(dir, 'ca'));
    for (const name of ['mine.test', 'other.test', 'bare.test']) await store.write(name, await ca.issue([name]));
    await writeRenewalConf(store, 'mine.test', [['server', 'https://CA.test:443/dir']]);
    await writeRenewalConf(store, 'other.test', [['server', 'https://acme-staging-v02.api.letsencrypt.org/directory']]);
    expect(await acmeIssuer.issued((await store.read('mine.test'))!)).toBe(true);
    expect(await acmeIssuer.issued((await store.read('other.test'))!)).toBe(false);
    // The local CA writes no renewal file: its certificates are replaced once the issuer is acme.
    expect(await acmeIssuer.issued((await store.read('bare.test'))!)).toBe(false);
  });
});
