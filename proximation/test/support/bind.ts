/**
 * A real authoritative DNS server for the DNS-01 tests: BIND 9 (Debian's `named`), started in the
 * foreground on a free loopback port (UDP and TCP) with its own zone, TSIG key and `recursion no`.
 *
 * The zone (`zone`, default dns.test) has its SOA, `ns1.<zone>` as its only NS (127.0.0.1), and every
 * name in it resolving to 127.0.0.1 (a wildcard A), so Pebble, pointed at this server with
 * `-dnsserver`, finds both the proxy and the TXT records. Updates are allowed only when signed with the
 * key (HMAC-SHA256); `credentialsFile` is certbot's dns-rfc2136 file for it. `startBind` resolves once
 * named logs that it is running; `output()` is what it logged (every update is logged, so tests can
 * count them); `close` kills it with SIGKILL and removes its directory.
 */
import { execFile, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll } from 'vitest';
import { freePorts } from './process.js';

const execFileAsync = promisify(execFile);
const READY_TIMEOUT_MS = 20_000;

export interface Bind {
  port: number;
  zone: string;
  keyName: string;
  secret: string;
  credentialsFile: string;
  dir: string;
  output(): string;
  /** The TXT values `name` has now, asked of the server with dig. */
  txt(name: string): Promise<string[]>;
  close(): Promise<void>;
}

export async function startBind({ zone = 'dns.test' } = {}): Promise<Bind> {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'proximation-bind-'));
  const [port] = (await freePorts(1)) as [number];
  const keyName = 'proximation-test.';
  const secret = randomBytes(32).toString('base64');
  await fs.writeFile(
    path.join(dir, 'named.conf'),
    `options {
  directory "${dir}";
  pid-file "${dir}/named.pid";
  listen-on port ${port} { 127.0.0.1; };
  listen-on-v6 { none; };
  recursion no;
  dnssec-validation no;
  notify no;
  allow-query { any; };
};
controls { };
key "${keyName}" { algorithm hmac-sha256; secret "${secret}"; };
zone "${zone}" { type primary; file "${dir}/${zone}.zone"; allow-update { key "${keyName}"; }; };
`,
  );
  await fs.writeFile(
    path.join(dir, `${zone}.zone`),
    `$TTL 60
@ IN SOA ns1.${zone}. hostmaster.${zone}. 1 60 60 600 60
@ IN NS ns1.${zone}.
@ IN A 127.0.0.1
* IN A 127.0.0.1
ns1 IN A 127.0.0.1
`,
  );
  const credentialsFile = path.join(dir, 'rfc2136.ini');
  await fs.writeFile(
    credentialsFile,
    `dns_rfc2136_server = 127.0.0.1\ndns_rfc2136_port = ${port}\ndns_rfc2136_name = ${keyName}\ndns_rfc2136_secret = ${secret}\ndns_rfc2136_algorithm = HMAC-SHA256\n`,
    { mode: 0o600 },
  );
  const child = spawn('named', ['-g', '-c', path.join(dir, 'named.conf'), '-n', '1'], { stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  const close = async (): Promise<void> => {
    if (child.exitCode === null && child.signalCode === null) {
      await new Promise<void>((resolve) => {
        child.once('exit', () => resolve());
        child.kill('SIGKILL');
      });
    }
    await fs.rm(dir, { recursive: true, force: true });
  };
  try {
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`named did not start within ${READY_TIMEOUT_MS} ms: ${output}`)), READY_TIMEOUT_MS);
      const onData = (chunk: Buffer): void => {
        output += chunk.toString();
        if (/^\S+ \S+ running$/m.test(output)) {
          clearTimeout(timer);
          resolve();
        }
      };
      child.stdout.on('data', onData);
      child.stderr.on('data', onData);
      child.once('exit', (code) => {
        clearTimeout(timer);
        reject(new Error(`named exited with ${code}: ${output}`));
      });
    });
  } catch (err) {
    await close();
    throw err;
  }
  return {
    port,
    zone,
    keyName,
    secret,
    credentialsFile,
    dir,
    output: () => output,
    async txt(name) {
      const { stdout } = await execFileAsync('dig', ['+short', '+norecurse', '-p', String(port), '@127.0.0.1', name, 'TXT']);
      return stdout
        .split('\n')
        .filter((line) => line !== '')
        .map((line) => line.replace(/^"|"$/g, '').replace(/" "/g, ''));
    },
    close,
  };
}

/** Starts BIND once for the calling test file and stops it after. */
export function useBind(): () => Bind {
  let bind: Bind | undefined;
  beforeAll(async () => {
    bind = await startBind();
  }, READY_TIMEOUT_MS + 5000);
  afterAll(async () => {
    await bind?.close();
  });
  return () => {
    if (bind === undefined) throw new Error('BIND is not running: useBind() starts it in beforeAll');
    return bind;
  };
}
