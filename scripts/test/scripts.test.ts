// The test command's scripts, run as real processes: the totals of both Node halves, and the system
// dependencies step as a user without root.
import { execFile } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterEach, expect, it } from 'vitest';

const run = promisify(execFile);
const scripts = fileURLToPath(new URL('..', import.meta.url));
let dir: string | undefined;
afterEach(async () => {
  if (dir !== undefined) await rm(dir, { recursive: true, force: true });
});

async function exitOf(command: string, args: string[]): Promise<{ code: number; output: string }> {
  try {
    const { stdout, stderr } = await run(command, args);
    return { code: 0, output: stdout + stderr };
  } catch (err) {
    const e = err as { code: number; stdout: string; stderr: string };
    return { code: e.code, output: e.stdout + e.stderr };
  }
}

it('prints the totals of both halves and fails when one failed or left no results', async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'proximation-totals-'));
  const passing = path.join(dir, 'a.json');
  await writeFile(passing, JSON.stringify({ numPassedTests: 7, numFailedTests: 0 }));
  const failing = path.join(dir, 'b.json');
  await writeFile(failing, JSON.stringify({ numPassedTests: 3, numFailedTests: 2 }));
  const totals = path.join(scripts, 'test-totals.mjs');

  expect(await exitOf('node', [totals, `node 20=${passing}`])).toEqual({ code: 0, output: 'node 20: 7 passed, 0 failed\ntests: 7 passed, 0 failed\n' });
  expect(await exitOf('node', [totals, `node 20=${passing}`, `node@26=${failing}`])).toEqual({
    code: 1,
    output: 'node 20: 7 passed, 0 failed\nnode@26: 3 passed, 2 failed\ntests: 10 passed, 2 failed\n',
  });
  const absent = await exitOf('node', [totals, `node 20=${path.join(dir, 'none.json')}`, `node@26=${passing}`]);
  expect(absent.code).toBe(1);
  expect(absent.output).toBe(`node 20: no results (${path.join(dir, 'none.json')}: ENOENT)\nnode@26: 7 passed, 0 failed\ntests: 7 passed, 0 failed, 1 run(s) without results\n`);
});

it('needs no root (and no sudo) for the system dependencies once they are installed', async () => {
  // nobody: a user that is not root, on a machine where the packages are installed (as they are here).
  const result = await exitOf('setpriv', ['--reuid=65534', '--regid=65534', '--clear-groups', path.join(scripts, 'install-system-deps.sh')]);
  expect(result).toEqual({ code: 0, output: expect.stringContaining('install-system-deps: already installed: bindfs fuse3') as unknown as string });
});
