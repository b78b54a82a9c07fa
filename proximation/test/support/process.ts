/**
 * Running the real `proximation` binary (the compiled `dist/bin/proximation.js`) as a child process, and
 * the small waiting tools such tests need. A child gets a minimal environment (PATH, one worker, plus
 * what the test passes), so PROXIMATION_* variables of the developer's shell cannot leak into a test. `spawnCli` throws
 * when the build output is missing, saying to run `npx tsc -b`; `startServeProcess` throws when the
 * process exits or does not become healthy in time, with its output in the message.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import fs from 'node:fs/promises';
import net from 'node:net';
import path from 'node:path';
import { PassThrough } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { main } from '../../src/cli.js';
import { httpRequest, type Proxy } from './fixtures.js';

export const CLI_PATH = fileURLToPath(new URL('../../dist/bin/proximation.js', import.meta.url));

export interface CliProcess {
  child: ChildProcess;
  /** Everything written so far. */
  stdout(): string;
  stderr(): string;
  /** Resolves when the process has exited (never rejects). */
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

export function spawnCli(args: string[], env: NodeJS.ProcessEnv = {}): CliProcess {
  if (!existsSync(CLI_PATH)) throw new Error(`${CLI_PATH} does not exist; build first with: cd /work/main && npx tsc -b`);
  // One process unless the test asks for workers: the default (one per CPU) would multiply every
  // process test's processes on a shared machine; test/cluster/ runs the workers.
  const child = spawn(process.execPath, [CLI_PATH, ...args], { env: { PATH: process.env.PATH, PROXIMATION_WORKERS: '1', ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  child.stdout.on('data', (c: Buffer) => (out += c.toString()));
  child.stderr.on('data', (c: Buffer) => (err += c.toString()));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
    child.once('close', (code, signal) => resolve({ code, signal }));
  });
  return { child, stdout: () => out, stderr: () => err, exited };
}

export interface ServeProcess {
  cli: CliProcess;
  ports: { http: number; https: number; admin: number };
  /** Enough of a `Proxy` (its CA and HTTPS port) for the fixtures' HTTPS and HTTP/2 clients. */
  target: Proxy;
  /** The routing table generation /healthz reports now. */
  routesGeneration(): Promise<number>;
  /** SIGKILLs the process unless it has exited already, and waits for the exit. */
  kill(): Promise<void>;
}

/**
 * `proximation serve` as a real process on free loopback ports with its state in `letsencryptDir`,
 * resolved once GET /healthz answers `readyStatus` (200 unless told; within `readyTimeoutMs`). `env` adds or overrides PROXIMATION_* variables.
 */
export async function startServeProcess(letsencryptDir: string, env: NodeJS.ProcessEnv = {}, readyTimeoutMs = 10_000, readyStatus = 200): Promise<ServeProcess> {
  const [http, https, admin] = (await freePorts(3)) as [number, number, number];
  const cli = spawnCli(['serve'], {
    PROXIMATION_HTTP_PORT: String(http),
    PROXIMATION_HTTPS_PORT: String(https),
    PROXIMATION_ADMIN_PORT: String(admin),
    PROXIMATION_LISTEN_ADDRESS: '127.0.0.1',
    PROXIMATION_LETSENCRYPT_DIR: letsencryptDir,
    PROXIMATION_LOG_FORMAT: 'json',
    ...env,
  });
  const kill = async (): Promise<void> => {
    if (cli.child.exitCode === null && cli.child.signalCode === null) cli.child.kill('SIGKILL');
    await cli.exited;
  };
  const health = async (): Promise<{ httpStatus: number; routesGeneration: number }> => {
    const res = await httpRequest(admin, 'localhost', '/healthz');
    return { httpStatus: res.status, routesGeneration: (JSON.parse(res.body) as { routesGeneration: number }).routesGeneration };
  };
  try {
    await waitUntil(async () => {
      if (cli.child.exitCode !== null) throw new Error(`proximation serve exited with ${cli.child.exitCode}: ${cli.stderr()}${cli.stdout()}`);
      return (await health().catch(() => undefined))?.httpStatus === readyStatus;
    }, `GET /healthz of proximation serve to answer ${readyStatus}`, readyTimeoutMs);
  } catch (err) {
    await kill();
    throw err;
  }
  // An ACME process has no local CA: its clients trust the CA's root instead.
  const ca = await fs.readFile(path.join(letsencryptDir, 'proximation', 'local-ca', 'root.pem'), 'utf8').catch((err: NodeJS.ErrnoException) => {
    if (err.code === 'ENOENT') return '';
    throw err;
  });
  return {
    cli,
    ports: { http, https, admin },
    target: { ca, server: { https: { port: https } } } as Proxy,
    routesGeneration: async () => (await health()).routesGeneration,
    kill,
  };
}

/**
 * `count` distinct ports that were free a moment ago: all are bound at once (so they differ), then
 * released. For a child process that must be told its ports, since port 0 would not tell the test.
 */
export async function freePorts(count: number): Promise<number[]> {
  const servers = await Promise.all(
    Array.from({ length: count }, () => new Promise<net.Server>((resolve, reject) => {
      const s = net.createServer();
      s.once('error', reject);
      s.listen(0, '127.0.0.1', () => resolve(s));
    })),
  );
  const ports = servers.map((s) => (s.address() as net.AddressInfo).port);
  await Promise.all(servers.map((s) => new Promise<void>((resolve) => s.close(() => resolve()))));
  return ports;
}

/** Polls `condition` until it holds; for states that announce themselves with no event. */
export async function waitUntil(condition: () => boolean | Promise<boolean>, what: string, timeoutMs = 5000, intervalMs = 25): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await condition()) return;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, intervalMs));
  }
}

/** `promise`, or a rejection naming `what` if it has not settled within `timeoutMs`. */
export async function within<T>(promise: Promise<T>, timeoutMs: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_resolve, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: did not happen within ${timeoutMs} ms`)), timeoutMs);
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/** Captured stdout/stderr for `main` run in-process. */
export interface CapturedIo {
  stdout: PassThrough;
  stderr: PassThrough;
  out(): string;
  err(): string;
}

export function capturedIo(): CapturedIo {
  const stdout = new PassThrough();
  const stderr = new PassThrough();
  let out = '';
  let err = '';
  stdout.on('data', (c: Buffer) => (out += c.toString()));
  stderr.on('data', (c: Buffer) => (err += c.toString()));
  return { stdout, stderr, out: () => out, err: () => err };
}

/** `proximation <argv>` in-process, as the bin entry runs it, with its output captured. */
export async function runMain(argv: string[], env: NodeJS.ProcessEnv = {}): Promise<{ code: number; out: string; err: string }> {
  const io = capturedIo();
  const code = await main(argv, { stdout: io.stdout, stderr: io.stderr, env });
  return { code, out: io.out(), err: io.err() };
}
