/**
 * Test support for deploy: running the CLI in-process with captured output, routing tables in temp
 * directories, and real HTTP servers on 127.0.0.1 (closed after each test) to stand in for upstreams
 * and for the ECS metadata endpoints.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { afterEach, expect } from 'vitest';
import { main } from '../src/cli.js';
import { tempDir } from '../../shared/test/helpers.js';

export { tempDir, waitUntil } from '../../shared/test/helpers.js';

class Capture extends Writable {
  text = '';
  override _write(chunk: Buffer, _encoding: BufferEncoding, done: () => void): void {
    this.text += chunk.toString();
    done();
  }
}

export interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

export async function deploy(argv: string[], env: NodeJS.ProcessEnv = {}): Promise<Run> {
  const stdout = new Capture();
  const stderr = new Capture();
  const code = await main(argv, env, { stdout, stderr });
  return { code, stdout: stdout.text, stderr: stderr.text };
}

/** Runs deploy and expects exit 0 and nothing on stderr; resolves to stdout. */
export async function deployOk(argv: string[], env: NodeJS.ProcessEnv = {}): Promise<string> {
  const result = await deploy(argv, env);
  expect(result.stderr).toBe('');
  expect(result.code).toBe(0);
  return result.stdout;
}

/** A new routing table file (in a fresh temp directory) with site dev (host dev.example.com, tag prefix devbuild-). */
export async function routesWithDev(): Promise<string> {
  const routes = join(await tempDir(), 'proximation', 'routes.json');
  await deployOk(['site', 'add', 'dev', '--host', 'dev.example.com', '--routes', routes]);
  return routes;
}

const servers: http.Server[] = [];

afterEach(async () => {
  for (const server of servers.splice(0)) {
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }
});

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
  servers.push(server);
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
