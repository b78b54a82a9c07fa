/**
 * The single-file bundle (scripts/bundle.mjs, built by `npm run build`) as an app's image uses it:
 * copied alone into a folder outside the repository, with no node_modules anywhere above it, and run
 * with plain node against a real routing table and a real upstream.
 */
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readRoutingTableFile } from '@proximation/shared';
import { upstream } from './helpers.js';

const run = promisify(execFile);
const BUNDLER = fileURLToPath(new URL('../scripts/bundle.mjs', import.meta.url));
const VERSION = (JSON.parse(await readFile(new URL('../package.json', import.meta.url), 'utf8')) as { version: string }).version;

let dir: string;
let bundle: string;

beforeAll(async () => {
  // /tmp, not the repository: nothing there can resolve @proximation/shared or zod.
  dir = await mkdtemp(join(tmpdir(), 'deploy-bundle-'));
  bundle = join(dir, 'deploy');
  await run(process.execPath, [BUNDLER, bundle]);
});
afterAll(() => rm(dir, { recursive: true, force: true }));

/** Runs the bundle as an image would: `deploy ...` by its shebang, from its folder, with a minimal environment. */
function deploy(args: string[], env: NodeJS.ProcessEnv = {}): Promise<{ stdout: string; stderr: string }> {
  return run(bundle, args, { cwd: dir, env: { PATH: process.env.PATH, ...env } });
}

describe('the deploy bundle', () => {
  it('is one executable file that runs without node_modules and knows its version', async () => {
    expect((await stat(bundle)).mode & 0o111).not.toBe(0);
    await expect(stat(join(dir, 'node_modules'))).rejects.toThrow();
    expect((await deploy(['--version'])).stdout).toBe(`deploy ${VERSION}\n`);
  });

  it('adds a site and registers a version against a routes file, health-checking a real upstream', async () => {
    const routes = join(dir, 'le', 'proximation', 'routes.json');
    const app = await upstream(200);
    const env = { PROXIMATION_ROUTES: routes };
    expect((await deploy(['site', 'add', 'dev', '--host', 'dev.example.com'], env)).stdout).toContain('added site dev');
    const registered = await deploy(['register', '--tag', 'devbuild-7', '--upstream', app.origin, '--health-path', '/healthz', '--json'], env);
    expect(JSON.parse(registered.stdout)).toMatchObject({ site: 'dev', version: 'devbuild-7', activation: 'activated', healthChecked: [app.origin] });
    expect(app.requests).toEqual(['GET /healthz']);
    expect((await readRoutingTableFile(routes)).sites[0]).toMatchObject({ activeVersion: 'devbuild-7' });
    await expect(deploy(['register', '--tag', 'devbuild-8', '--upstream', 'ftp://x'], env)).rejects.toMatchObject({ code: 2 });
  });
});
