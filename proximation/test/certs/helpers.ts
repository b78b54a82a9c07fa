/** Shared by the certs tests: temp dirs, and node child processes that run the compiled modules. */
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

export async function withTempDir<T>(fn: (dir: string) => Promise<T>): Promise<T> {
  const dir = await mkdtemp(join(tmpdir(), 'proximation-certs-'));
  try {
    return await fn(dir);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/** file: URL of a compiled module under proximation/dist; child processes cannot load the TypeScript sources. */
export function distModule(relative: string): string {
  const path = fileURLToPath(new URL(`../../dist/${relative}`, import.meta.url));
  if (!existsSync(path)) throw new Error(`${path} is missing: run \`npx tsc -b\` before these tests`);
  return pathToFileURL(path).href;
}

/** Starts `node --input-type=module -e script` with extra environment variables. */
export function startNode(script: string, env: Record<string, string> = {}): ChildProcessWithoutNullStreams {
  return spawn(process.execPath, ['--input-type=module', '-e', script], {
    env: { ...process.env, ...env },
    stdio: 'pipe',
  });
}

/** Resolves with the child's stdout once it exits with status 0; rejects with its stderr otherwise. */
export function finished(child: ChildProcessWithoutNullStreams): Promise<string> {
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
  return new Promise((resolve, reject) => {
    child.on('error', reject);
    child.on('close', (code, signal) => {
      if (code === 0) resolve(stdout);
      else reject(new Error(`child exited with ${code ?? signal}: ${stderr}`));
    });
  });
}
