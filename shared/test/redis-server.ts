/**
 * Test support: a real `redis-server` (Debian package redis-server) on a free 127.0.0.1 port with its
 * own temp directory, optionally with a password (requirepass) and/or TLS (a CA and a server
 * certificate for 127.0.0.1 made by openssl for the test). `stop` kills it (SIGKILL) and `start` runs it
 * again on the same port and directory, for restart tests; with `persistent` every write is in its
 * append-only file, fsynced, before it answers, so what was written survives the SIGKILL (as on a
 * managed Redis with persistence or a replica), else a restart starts empty. `useRedisServer` starts one
 * for the calling file's (or describe block's) tests and stops it after them. Callers stop it in afterAll; `stop` also
 * removes the directory when `final` is set.
 */
import { execFile, spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll } from 'vitest';

export interface RedisServerOptions {
  password?: string;
  tls?: boolean;
  persistent?: boolean;
}

export interface RedisServer {
  /** redis:// or rediss:// URL, with the password when there is one. */
  readonly url: string;
  readonly port: number;
  /** PEM of the CA that signed the server's certificate (TLS only). */
  readonly ca: string | undefined;
  start(): Promise<void>;
  stop(options?: { final?: boolean }): Promise<void>;
}

async function freePort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', resolve);
  });
  const { port } = server.address() as net.AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

async function makeTestCa(dir: string): Promise<void> {
  await writeFile(join(dir, 'san.cnf'), 'subjectAltName=IP:127.0.0.1\n');
  const run = (args: string[]): Promise<unknown> => promisify(execFile)('openssl', args, { cwd: dir });
  await run(['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', 'ca.key', '-out', 'ca.pem',
    '-days', '1', '-subj', '/CN=proximation test CA']);
  await run(['req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', 'server.key', '-out', 'server.csr',
    '-subj', '/CN=127.0.0.1']);
  await run(['x509', '-req', '-in', 'server.csr', '-CA', 'ca.pem', '-CAkey', 'ca.key', '-CAcreateserial', '-out', 'server.pem', '-days', '1',
    '-extfile', 'san.cnf']);
}

export async function startRedisServer(options: RedisServerOptions = {}): Promise<RedisServer> {
  const dir = await mkdtemp(join(tmpdir(), 'proximation-redis-'));
  const port = await freePort();
  let ca: string | undefined;
  const persistence = options.persistent === true ? ['--appendonly', 'yes', '--appendfsync', 'always'] : ['--appendonly', 'no'];
  const args = ['--bind', '127.0.0.1', '--dir', dir, '--save', '', ...persistence, '--protected-mode', 'no'];
  if (options.tls === true) {
    await makeTestCa(dir);
    ca = await readFile(join(dir, 'ca.pem'), 'utf8');
    args.push('--port', '0', '--tls-port', String(port), '--tls-cert-file', join(dir, 'server.pem'), '--tls-key-file', join(dir, 'server.key'),
      '--tls-ca-cert-file', join(dir, 'ca.pem'), '--tls-auth-clients', 'no');
  } else {
    args.push('--port', String(port));
  }
  if (options.password !== undefined) args.push('--requirepass', options.password);
  const auth = options.password === undefined ? '' : `:${encodeURIComponent(options.password)}@`;
  const url = `${options.tls === true ? 'rediss' : 'redis'}://${auth}127.0.0.1:${port}`;

  let child: ChildProcess | undefined;
  const start = async (): Promise<void> => {
    const started = spawn('redis-server', args, { stdio: ['ignore', 'pipe', 'pipe'] });
    child = started;
    let output = '';
    await new Promise<void>((resolve, reject) => {
      started.stdout.setEncoding('utf8').on('data', (chunk: string) => {
        output += chunk;
        if (output.includes('Ready to accept connections')) resolve();
      });
      started.once('error', reject);
      started.once('exit', (code) => reject(new Error(`redis-server exited (${code}) before it was ready: ${output}`)));
    });
  };
  const stop = async ({ final = false } = {}): Promise<void> => {
    const running = child;
    child = undefined;
    if (running !== undefined && running.exitCode === null && running.signalCode === null) {
      const exited = new Promise((resolve) => running.once('exit', resolve));
      running.kill('SIGKILL');
      await exited;
    }
    if (final) await rm(dir, { recursive: true, force: true });
  };
  try {
    await start();
  } catch (err) {
    await stop({ final: true });
    throw err;
  }
  return { url, port, ca, start, stop };
}

/** A redis-server for the tests of the calling file or describe block: started before them, stopped after. */
export function useRedisServer(options: RedisServerOptions = {}): () => RedisServer {
  let server: RedisServer | undefined;
  beforeAll(async () => {
    server = await startRedisServer(options);
  });
  afterAll(async () => {
    await server?.stop({ final: true });
  });
  return () => {
    if (server === undefined) throw new Error('the redis-server is started in beforeAll: use it inside a test');
    return server;
  };
}
