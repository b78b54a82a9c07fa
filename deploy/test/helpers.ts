/**
 * Test support for deploy: running the CLI in-process with captured output or as a real process (the
 * compiled bin; `npx tsc -b` first), routing tables in temp directories, and (from shared's helpers)
 * real HTTP servers on 127.0.0.1, closed after each test, to stand in for upstreams and for the ECS
 * metadata endpoints.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Writable } from 'node:stream';
import { expect } from 'vitest';
import { main } from '../src/cli.js';
import { tempDir } from '../../shared/test/helpers.js';

export { refusingOrigin, startServer, tempDir, upstream, waitUntil } from '../../shared/test/helpers.js';
export type { TestServer } from '../../shared/test/helpers.js';

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

export const DEPLOY_BIN = fileURLToPath(new URL('../dist/bin/deploy.js', import.meta.url));

export interface DeployProcess {
  readonly child: ChildProcess;
  /** What it wrote to stderr so far. */
  stderr(): string;
  /** Resolves once it has exited and its output is closed, with its exit code or signal and its output. */
  readonly result: Promise<{ code: number | null; signal: NodeJS.Signals | null; stdout: string; stderr: string }>;
}

/** Starts the deploy bin in a child process whose environment is PATH plus `env`. */
export function spawnDeploy(args: string[], env: NodeJS.ProcessEnv = {}): DeployProcess {
  if (!existsSync(DEPLOY_BIN)) throw new Error(`${DEPLOY_BIN} is missing: run "npx tsc -b" before these tests`);
  const child = spawn(process.execPath, [DEPLOY_BIN, ...args], { env: { PATH: process.env.PATH, ...env } });
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
  const result = new Promise<{ code: number | null; signal: NodeJS.Signals | null; stdout: string; stderr: string }>((resolve, reject) => {
    child.on('error', reject);
    child.on('close', (code, signal) => resolve({ code, signal, stdout, stderr }));
  });
  return { child, stderr: () => stderr, result };
}

/** Runs the deploy bin in a child process whose environment is PATH plus `env`. */
export async function runDeploy(args: string[], env: NodeJS.ProcessEnv = {}): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const { code, stdout, stderr } = await spawnDeploy(args, env).result;
  return { code, stdout, stderr };
}

/**
 * Runs the deploy bin on a real pseudo-terminal (util-linux `script`, which gives the child a pty as
 * stdin, stdout and stderr). `react` sees everything the terminal has shown so far, after each chunk,
 * and may type into it. Resolves with the exit code and everything the terminal showed.
 */
export function runDeployOnTerminal(
  args: string[],
  react?: (output: string, type: (text: string) => void) => void,
): Promise<{ code: number | null; output: string }> {
  if (!existsSync(DEPLOY_BIN)) throw new Error(`${DEPLOY_BIN} is missing: run "npx tsc -b" before these tests`);
  const quoted = [process.execPath, DEPLOY_BIN, ...args].map((a) => `'${a.replaceAll("'", "'\\''")}'`).join(' ');
  // A wide terminal, so that no progress line is shortened to fit.
  const child = spawn('script', ['-qec', `stty cols 300 rows 50; ${quoted}`, '/dev/null'], { env: { PATH: process.env.PATH, TERM: 'dumb' }, stdio: ['pipe', 'pipe', 'inherit'] });
  let output = '';
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
    output += chunk;
    react?.(output, (text) => child.stdin.write(text));
  });
  return new Promise((resolve, reject) => {
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, output: output.replaceAll('\r\n', '\n') }));
  });
}

/** For runDeployOnTerminal: types `text` once `prompt` has appeared. */
export function answerOnce(prompt: string, text: string): (output: string, type: (text: string) => void) => void {
  let answered = false;
  return (output, type) => {
    if (!answered && output.includes(prompt)) {
      answered = true;
      type(text);
    }
  };
}
