/**
 * A real authoritative DNS server for the DNS-01 tests: BIND 9 (Debian's `named`), started in the
 * foreground on a free loopback port (UDP and TCP) with the set-up of bench/bind-config.ts: its own zone
 * (`zone`, default dns.test) where every name is 127.0.0.1, so Pebble, pointed at this server with
 * `-dnsserver`, finds both the proxy and the TXT records, and a TSIG key that alone may update it;
 * `credentialsFile` is certbot's dns-rfc2136 file for it. `startBind` resolves once
 * named logs that it is running; `output()` is what it logged (every update is logged, so tests can
 * count them); `close` kills it with SIGKILL and removes its directory.
 */
import { execFile, spawn } from 'node:child_process';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll } from 'vitest';
import { BIND_RUNNING, writeBindConfig } from '../../bench/bind-config.js';
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
  const { confPath, keyName, secret, credentialsFile } = await writeBindConfig(dir, port, zone);
  const child = spawn('named', ['-g', '-c', confPath, '-n', '1'], { stdio: ['ignore', 'pipe', 'pipe'] });
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
        if (BIND_RUNNING.test(output)) {
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
