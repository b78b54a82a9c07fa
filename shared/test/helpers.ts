/**
 * Test support: temp directories removed after each test, child Node processes running the compiled
 * shared package (`npx tsc -b` first) that are killed if a test leaves them running, and real HTTP
 * servers on 127.0.0.1 (closed after each test) to stand in for upstreams.
 */
import { spawn } from 'node:child_process';
import type { ChildProcessWithoutNullStreams } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach } from 'vitest';

const cleanups: Array<() => Promise<void>> = [];

afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

export async function tempDir(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'proximation-shared-'));
  cleanups.push(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

export interface Child {
  readonly process: ChildProcessWithoutNullStreams;
  /** Resolves with the first stdout line, parsed as JSON. */
  readonly firstLine: Promise<unknown>;
  /** Resolves when the process has exited, with everything it printed. */
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null; stdout: string; stderr: string }>;
}

/** Runs `fixtures/<name>` (which imports ../../dist) with `args`. */
export function runFixture(name: string, args: readonly string[]): Child {
  const dist = fileURLToPath(new URL('../dist/index.js', import.meta.url));
  if (!existsSync(dist)) throw new Error(`${dist} is missing: run "npx tsc -b" before these tests`);
  const child = spawn(process.execPath, [fileURLToPath(new URL(`fixtures/${name}`, import.meta.url)), ...args]);
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null; stdout: string; stderr: string }>((resolve) =>
    child.on('close', (code, signal) => resolve({ code, signal, stdout, stderr })),
  );
  const firstLine = new Promise<unknown>((resolve, reject) => {
    const onData = (): void => {
      const end = stdout.indexOf('\n');
      if (end === -1) return;
      child.stdout.off('data', onData);
      resolve(JSON.parse(stdout.slice(0, end)));
    };
    child.stdout.on('data', onData);
    void exited.then(({ code, stderr: err }) => reject(new Error(`${name} exited (${code}) before printing a line: ${err}`)));
  });
  firstLine.catch(() => undefined); // tests that never await it must not see an unhandled rejection
  cleanups.push(async () => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGKILL');
      await exited;
    }
  });
  return { process: child, firstLine, exited };
}

/** Polls `condition` until it returns true, failing after `timeoutMs`. */
export async function waitUntil(condition: () => boolean | Promise<boolean>, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

export interface TestServer {
  /** Such as http://127.0.0.1:41234 */
  readonly origin: string;
  readonly port: number;
  /** Request lines received, such as "GET /healthz". */
  readonly requests: string[];
}

/** A real HTTP server on 127.0.0.1 with `handler`, closed after the test. */
export async function startServer(handler: http.RequestListener): Promise<TestServer> {
  const requests: string[] = [];
  const server = http.createServer((req, res) => {
    requests.push(`${req.method} ${req.url}`);
    handler(req, res);
  });
  cleanups.push(async () => {
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return { origin: `http://127.0.0.1:${port}`, port, requests };
}

/** An upstream answering every request with `status` (or what `status()` returns at that moment). */
export function upstream(status: number | (() => number)): Promise<TestServer> {
  return startServer((_req, res) => {
    res.writeHead(typeof status === 'number' ? status : status(), { 'content-type': 'text/plain' });
    res.end('upstream\n');
  });
}

/** An origin on 127.0.0.1 where nothing listens, so connections are refused. */
export async function refusingOrigin(): Promise<string> {
  const server = http.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return `http://127.0.0.1:${port}`;
}
