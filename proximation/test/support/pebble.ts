/**
 * A real ACME CA for the tests: Let's Encrypt's Pebble with pebble-challtestsrv as its DNS (every name
 * resolves to 127.0.0.1), or a DNS server the test started (`dnsServer`), both from Debian, on fixed ports. Pebble validates HTTP-01 on PEBBLE_PORTS.http01
 * and TLS-ALPN-01 on PEBBLE_PORTS.tlsAlpn01, so the proxy under test listens there. Test files that use
 * Pebble run in parallel with the others, but one at a time among themselves: `startPebble` holds a
 * lease lock (the project's own, across processes) on those ports until `close`, so give the hook that
 * calls it a timeout long enough to wait for another file (PEBBLE_WAIT_MS).
 *
 * `startPebble` makes Pebble's own HTTPS CA and certificate (it ships none) in a temp dir, writes its
 * config (certificates live 90 days unless `certificateLifetimeS` says otherwise: Pebble's own
 * `certificateValidityPeriod`, which gives real minutes-long certificates for renewal tests), starts
 * both processes, waits until the directory answers, and fetches the issuing root (regenerated on every
 * start). `close` kills both and removes the temp dir. It throws with the processes' output when they
 * exit early or do not become ready in time. `servedCertificate` is the leaf a TLS client that trusts
 * only Pebble's root gets.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { KeyObject, randomBytes, webcrypto, type X509Certificate } from 'node:crypto';
import fs from 'node:fs/promises';
import https from 'node:https';
import os from 'node:os';
import path from 'node:path';
import tls from 'node:tls';
import { setTimeout as delay } from 'node:timers/promises';
import { promisify } from 'node:util';
import * as x509 from '@peculiar/x509';
import { acquireLock } from '@proximation/shared';
import { afterAll, beforeAll } from 'vitest';

x509.cryptoProvider.set(webcrypto);

export const PEBBLE_PORTS = { acme: 14000, management: 15000, http01: 5002, tlsAlpn01: 5001, dns: 8053, challtestsrv: 8055 } as const;
/** An external account binding key Pebble accepts (it does not require one). */
export const PEBBLE_EAB = { kid: 'kid-1', hmacKey: 'zWNDZM6eQGHWpSRTPal5eIUYFTu7EajVIoguysqZ9wG44nMEtx3MUAsUDkMTQ12W' } as const;

const execFileAsync = promisify(execFile);
const READY_TIMEOUT_MS = 10_000;
/** How long a test file may wait for another one to finish with Pebble. */
export const PEBBLE_WAIT_MS = 240_000;

export interface PebbleOptions {
  /** Extra environment for Pebble (PEBBLE_AUTHZREUSE...). */
  env?: Record<string, string>;
  /** Lifetime of the certificates Pebble issues, in seconds. Default 90 days, like Let's Encrypt's classic profile. */
  certificateLifetimeS?: number;
  /**
   * The DNS server Pebble resolves names and DNS-01 records with (host:port), such as a BIND started by
   * the test (bind.ts); default pebble-challtestsrv, which answers 127.0.0.1 for every name.
   */
  dnsServer?: string;
}

export interface Pebble {
  directoryUrl: string;
  /** PEM file of the CA that issued Pebble's own HTTPS certificate: PROXIMATION_ACME_CA_CERTS. */
  caCertsPath: string;
  caCertsPem: string;
  /** The root that Pebble's issued certificates chain to. */
  rootPem: string;
  /** Pebble's output so far. */
  output(): string;
  close(): Promise<void>;
}

/** The settings of a proximation process that orders from `pebble` into `le`. */
export function acmeProcessEnv(pebble: Pebble, le: string): Record<string, string> {
  return {
    PROXIMATION_LETSENCRYPT_DIR: le,
    PROXIMATION_ISSUER: 'acme',
    PROXIMATION_ACME_DIRECTORY: pebble.directoryUrl,
    PROXIMATION_ACME_CA_CERTS: pebble.caCertsPath,
  };
}

export async function startPebble({ env = {}, certificateLifetimeS = 7_776_000, dnsServer }: PebbleOptions = {}): Promise<Pebble> {
  const ports = await acquireLock(path.join(os.tmpdir(), 'proximation-test-pebble-ports.lock'), { timeoutMs: PEBBLE_WAIT_MS - 20_000 });
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'proximation-pebble-'));
  const children: ChildProcess[] = [];
  let output = '';
  const close = async (): Promise<void> => {
    await Promise.all(children.map(kill));
    await fs.rm(dir, { recursive: true, force: true });
    await ports.release();
  };
  try {
    const { caPem, certPem, keyPem } = await loopbackHttpsIdentity();
    const caCertsPath = path.join(dir, 'https-ca.pem');
    await fs.writeFile(caCertsPath, caPem);
    await fs.writeFile(path.join(dir, 'cert.pem'), certPem);
    await fs.writeFile(path.join(dir, 'key.pem'), keyPem);
    const configPath = path.join(dir, 'pebble.json');
    await fs.writeFile(
      configPath,
      JSON.stringify({
        pebble: {
          listenAddress: `127.0.0.1:${PEBBLE_PORTS.acme}`,
          managementListenAddress: `127.0.0.1:${PEBBLE_PORTS.management}`,
          certificate: path.join(dir, 'cert.pem'),
          privateKey: path.join(dir, 'key.pem'),
          httpPort: PEBBLE_PORTS.http01,
          tlsPort: PEBBLE_PORTS.tlsAlpn01,
          ocspResponderURL: '',
          externalAccountBindingRequired: false,
          externalAccountMACKeys: { [PEBBLE_EAB.kid]: PEBBLE_EAB.hmacKey },
          // Pebble's default is 5 years.
          certificateValidityPeriod: certificateLifetimeS,
        },
      }),
    );
    const record = (child: ChildProcess): ChildProcess => {
      children.push(child);
      child.stdout?.on('data', (c: Buffer) => (output += c.toString()));
      child.stderr?.on('data', (c: Buffer) => (output += c.toString()));
      return child;
    };
    // Its own HTTP-01/TLS-ALPN-01 responders would take the ports the proxy must listen on; IPv6 off, or
    // Pebble dials [::1] where nothing listens.
    const dns = dnsServer === undefined ? record(
      spawn('pebble-challtestsrv', [
        '-defaultIPv4', '127.0.0.1', '-defaultIPv6', '',
        '-dns01', `127.0.0.1:${PEBBLE_PORTS.dns}`, '-management', `127.0.0.1:${PEBBLE_PORTS.challtestsrv}`,
        '-http01', '', '-https01', '', '-tlsalpn01', '',
      ], { stdio: ['ignore', 'pipe', 'pipe'] }),
    ) : undefined;
    const pebble = record(
      spawn('pebble', ['-config', configPath, '-dnsserver', dnsServer ?? `127.0.0.1:${PEBBLE_PORTS.dns}`, '-strict'], {
        stdio: ['ignore', 'pipe', 'pipe'],
        // No random validation sleeps (up to 5 s each); every listed order on one page.
        env: { ...process.env, PEBBLE_VA_NOSLEEP: '1', PEBBLE_WFE_ORDERS_PER_PAGE: '1000', ...env },
      }),
    );
    const directoryUrl = `https://127.0.0.1:${PEBBLE_PORTS.acme}/dir`;
    const deadline = Date.now() + READY_TIMEOUT_MS;
    for (;;) {
      for (const child of dns === undefined ? [pebble] : [dns, pebble]) {
        if (child.exitCode !== null || child.signalCode !== null) throw new Error(`${child.spawnfile} exited early: ${output}`);
      }
      if ((await get(directoryUrl, caPem).catch(() => undefined)) !== undefined) break;
      if (Date.now() > deadline) throw new Error(`Pebble did not answer at ${directoryUrl} within ${READY_TIMEOUT_MS} ms: ${output}`);
      await delay(50);
    }
    const rootPem = await get(`https://127.0.0.1:${PEBBLE_PORTS.management}/roots/0`, caPem);
    return { directoryUrl, caCertsPath, caCertsPem: caPem, rootPem, output: () => output, close };
  } catch (err) {
    await close();
    throw err;
  }
}

function kill(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    child.once('exit', () => resolve());
    child.kill('SIGKILL');
  });
}

function get(url: string, ca: string): Promise<string> {
  return new Promise((resolve, reject) => {
    https
      .get(url, { ca, agent: false }, (res) => {
        let body = '';
        res.on('data', (c: Buffer) => (body += c.toString()));
        res.on('end', () => (res.statusCode === 200 ? resolve(body) : reject(new Error(`${url}: HTTP ${res.statusCode}`))));
      })
      .on('error', reject);
  });
}

/**
 * A throwaway CA and, signed by it, a certificate for 127.0.0.1 and localhost: Pebble's HTTPS identity,
 * and that of any other loopback HTTPS server a test needs.
 */
export async function loopbackHttpsIdentity(): Promise<{ caPem: string; certPem: string; keyPem: string }> {
  const algorithm = { name: 'ECDSA', namedCurve: 'P-256' } as const;
  const signing = { name: 'ECDSA', hash: 'SHA-256' } as const;
  const now = Date.now();
  const notBefore = new Date(now - 3_600_000);
  const notAfter = new Date(now + 7 * 86_400_000);
  const caKeys = await webcrypto.subtle.generateKey(algorithm, true, ['sign', 'verify']);
  const ca = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: `01${randomBytes(8).toString('hex')}`,
    name: 'CN=proximation test: Pebble HTTPS CA',
    keys: caKeys,
    notBefore,
    notAfter,
    signingAlgorithm: signing,
    extensions: [
      new x509.BasicConstraintsExtension(true, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign, true),
      await x509.SubjectKeyIdentifierExtension.create(caKeys.publicKey),
    ],
  });
  const keys = await webcrypto.subtle.generateKey(algorithm, true, ['sign', 'verify']);
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber: `01${randomBytes(8).toString('hex')}`,
    subject: 'CN=127.0.0.1',
    issuer: ca.subject,
    notBefore,
    notAfter,
    publicKey: keys.publicKey,
    signingKey: caKeys.privateKey,
    signingAlgorithm: signing,
    extensions: [
      new x509.SubjectAlternativeNameExtension([
        { type: 'ip', value: '127.0.0.1' },
        { type: 'dns', value: 'localhost' },
      ]),
      new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth]),
      await x509.AuthorityKeyIdentifierExtension.create(ca),
    ],
  });
  return {
    caPem: `${ca.toString('pem')}\n`,
    certPem: `${cert.toString('pem')}\n`,
    keyPem: KeyObject.from(keys.privateKey).export({ type: 'pkcs8', format: 'pem' }) as string,
  };
}

/** Starts Pebble once for the calling test file (waiting its turn for the ports) and stops it after. */
export function usePebble(options: PebbleOptions = {}): () => Pebble {
  let pebble: Pebble | undefined;
  beforeAll(async () => {
    pebble = await startPebble(options);
  }, PEBBLE_WAIT_MS);
  afterAll(async () => {
    await pebble?.close();
  });
  return () => {
    if (pebble === undefined) throw new Error('Pebble is not running: usePebble() starts it in beforeAll');
    return pebble;
  };
}

/**
 * The leaf certificate a TLS client gets for SNI `host` on `port` (the proxy's HTTPS listener) when it
 * trusts nothing but Pebble's root (or another CA's: only `rootPem` is used): the handshake only succeeds with a chain it issued. The proxy
 * holds the handshake until it has the certificate, so this also waits for an issuance.
 */
export function servedCertificate(pebble: Pick<Pebble, 'rootPem'>, host: string, port: number = PEBBLE_PORTS.tlsAlpn01): Promise<X509Certificate> {
  return new Promise((resolve, reject) => {
    const socket = tls.connect({ host: '127.0.0.1', port, servername: host, ca: pebble.rootPem });
    socket.once('secureConnect', () => {
      const leaf = socket.getPeerX509Certificate()!;
      socket.end();
      resolve(leaf);
    });
    socket.once('error', reject);
  });
}

/**
 * certbot 2.1 (Debian 12) on Python 3.11 crashes with this message instead of handling an ACME error
 * response (certbot/certbot#9539). Pebble answers errors on purpose (it refuses 5% of nonces), so now and
 * then a certbot run dies of one it would otherwise handle (seen once in CI). Only that crash is retried.
 */
const CERTBOT_PY311_CRASH = "AttributeError: can't set attribute";
const CERTBOT_ATTEMPTS = 3;

/** Runs the real certbot on a config dir in certbot's layout, trusting Pebble's HTTPS; its output. */
export async function runCertbot(pebble: Pebble, le: string, ...args: string[]): Promise<string> {
  const scratch = path.join(path.dirname(le), 'certbot');
  for (let attempt = 1; ; attempt++) {
    try {
      const { stdout, stderr } = await execFileAsync(
        'certbot',
        [...args, '--non-interactive', '--config-dir', le, '--work-dir', path.join(scratch, 'work'), '--logs-dir', path.join(scratch, 'logs')],
        { env: { ...process.env, REQUESTS_CA_BUNDLE: pebble.caCertsPath } },
      );
      return `${stdout}${stderr}`;
    } catch (err) {
      const output = (err as { stderr?: string }).stderr ?? '';
      if (attempt === CERTBOT_ATTEMPTS || !output.includes(CERTBOT_PY311_CRASH)) throw err;
    }
  }
}
