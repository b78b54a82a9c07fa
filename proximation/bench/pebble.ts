/**
 * Let's Encrypt's Pebble (with pebble-challtestsrv as its DNS: every name is 127.0.0.1, or a given DNS server), both from Debian,
 * as the ACME CA of the certificate benchmark. It validates HTTP-01 on PEBBLE_HTTP01_PORT and TLS-ALPN-01
 * on PEBBLE_TLS_ALPN01_PORT, so the proxy under test listens there; the ACME and management ports are
 * fixed too, so one Pebble per machine at a time: `startPebble` first takes the lease the test suite's
 * Pebble takes on those ports (waiting up to PORTS_WAIT_MS for a test file to finish with them), and
 * `close` releases it.
 * `startPebble` gives Pebble an HTTPS identity from a throwaway openssl CA (it ships none), starts both
 * processes under the supervisor, waits until the directory answers and fetches the issuing root (new on
 * every start). Throws `ERR_BENCH_COMMAND` when openssl fails, `ERR_BENCH_NOT_READY` when Pebble does
 * not come up (with its log), and ERR_LOCK_TIMEOUT when the ports stay taken.
 */
import { readFile, writeFile } from 'node:fs/promises';
import { get } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { acquireLock } from '@proximation/shared';
import type { ChildSupervisor, Service } from './children.js';
import { pollUntilReady } from './readiness.js';

export const PEBBLE_HTTP01_PORT = 5002;
export const PEBBLE_TLS_ALPN01_PORT = 5001;
const ACME_PORT = 14000;
const MANAGEMENT_PORT = 15000;
const DNS_PORT = 8053;
const CHALLTESTSRV_PORT = 8055;
const READY_TIMEOUT_MS = 15_000;
/** The lease proximation/test/support/pebble.ts holds while a test file uses these ports. */
const PORTS_LOCK = join(tmpdir(), 'proximation-test-pebble-ports.lock');
const PORTS_WAIT_MS = 300_000;

export interface BenchPebble {
  readonly directoryUrl: string;
  /** PEM file of the CA behind Pebble's own HTTPS certificate: PROXIMATION_ACME_CA_CERTS. */
  readonly caCertsPath: string;
  /** The root Pebble's issued certificates chain to. */
  readonly rootPem: string;
  readonly services: readonly Service[];
  /** Stops both processes and gives the ports back. */
  close(): Promise<void>;
}

function fetchText(url: string, ca: string): Promise<string> {
  return new Promise((resolve, reject) => {
    get(url, { ca, servername: 'localhost', agent: false }, (res) => {
      let body = '';
      res.setEncoding('utf8').on('data', (c: string) => (body += c));
      res.on('end', () => (res.statusCode === 200 ? resolve(body) : reject(new Error(`${url}: HTTP ${res.statusCode}`))));
    }).on('error', reject);
  });
}

async function httpsIdentity(children: ChildSupervisor, dir: string): Promise<{ ca: string; cert: string; key: string }> {
  const ca = join(dir, 'https-ca.pem');
  const caKey = join(dir, 'https-ca.key');
  const cert = join(dir, 'https.pem');
  const key = join(dir, 'https.key');
  const csr = join(dir, 'https.csr');
  const ext = join(dir, 'https.ext');
  await writeFile(ext, 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n');
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes'];
  const openssl = (name: string, args: string[]): Promise<unknown> => children.run({ name, command: 'openssl', args, cwd: dir }, 10_000);
  await openssl('openssl-ca', ['req', '-x509', ...ec, '-keyout', caKey, '-out', ca, '-days', '7', '-subj', '/CN=proximation bench: Pebble HTTPS CA',
    '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign']);
  await openssl('openssl-csr', ['req', ...ec, '-keyout', key, '-out', csr, '-subj', '/CN=127.0.0.1']);
  await openssl('openssl-sign', ['x509', '-req', '-in', csr, '-CA', ca, '-CAkey', caKey, '-CAcreateserial', '-days', '7', '-out', cert, '-extfile', ext]);
  return { ca, cert, key };
}

/** `dnsServer` (host:port): the DNS Pebble resolves with instead of pebble-challtestsrv (a BIND for DNS-01). */
export async function startPebble(children: ChildSupervisor, dir: string, dnsServer?: string): Promise<BenchPebble> {
  const ports = await acquireLock(PORTS_LOCK, { timeoutMs: PORTS_WAIT_MS });
  try {
    return await startOnPorts(children, dir, () => ports.release(), dnsServer);
  } catch (err) {
    await ports.release();
    throw err;
  }
}

async function startOnPorts(children: ChildSupervisor, dir: string, releasePorts: () => Promise<void>, dnsServer: string | undefined): Promise<BenchPebble> {
  const identity = await httpsIdentity(children, dir);
  const config = join(dir, 'pebble.json');
  await writeFile(config, JSON.stringify({
    pebble: {
      listenAddress: `127.0.0.1:${ACME_PORT}`,
      managementListenAddress: `127.0.0.1:${MANAGEMENT_PORT}`,
      certificate: identity.cert,
      privateKey: identity.key,
      httpPort: PEBBLE_HTTP01_PORT,
      tlsPort: PEBBLE_TLS_ALPN01_PORT,
      ocspResponderURL: '',
      externalAccountBindingRequired: false,
      certificateValidityPeriod: 7_776_000,
    },
  }));
  // IPv6 off (or Pebble dials [::1]); challtestsrv's own challenge listeners off (they take the proxy's ports).
  const dns = dnsServer !== undefined ? undefined : await children.start({
    name: 'pebble-challtestsrv',
    command: 'pebble-challtestsrv',
    args: ['-defaultIPv4', '127.0.0.1', '-defaultIPv6', '', '-dns01', `127.0.0.1:${DNS_PORT}`, '-management', `127.0.0.1:${CHALLTESTSRV_PORT}`,
      '-http01', '', '-https01', '', '-tlsalpn01', ''],
  });
  const pebble = await children.start({
    name: 'pebble',
    command: 'pebble',
    args: ['-config', config, '-dnsserver', dnsServer ?? `127.0.0.1:${DNS_PORT}`, '-strict'],
    // Without it every validation sleeps up to 5 s at random.
    env: { ...process.env, PEBBLE_VA_NOSLEEP: '1' },
  });
  const caPem = await readFile(identity.ca, 'utf8');
  const directoryUrl = `https://127.0.0.1:${ACME_PORT}/dir`;
  const services = dns === undefined ? [pebble] : [dns, pebble];
  await pollUntilReady('Pebble directory', READY_TIMEOUT_MS, services, () => fetchText(directoryUrl, caPem));
  const rootPem = await fetchText(`https://127.0.0.1:${MANAGEMENT_PORT}/roots/0`, caPem);
  const close = async (): Promise<void> => {
    for (const service of services) await children.stop(service);
    await releasePorts();
  };
  return { directoryUrl, caCertsPath: identity.ca, rootPem, services, close };
}
