/**
 * Proves the container image's content without a Docker engine: the runtime stage of
 * Dockerfile.proximation is replayed here (its COPY lines from the repository, its `npm ci` line, its
 * COPY --from=build lines of compiled output) into a temporary folder, and the result must run
 * `proximation --version`, `serve` (on the allocator the image preloads, as the benchmark runs it), and
 * proxy one request; its RUN lines' `chmod` and `ln -s` are replayed too, so `proximation` and `deploy`
 * must run from the image's PATH. A runtime import of a dev dependency, or a file the image forgets,
 * fails this test.
 */
import { execFile, spawn } from 'node:child_process';
import fs from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { expect, it } from 'vitest';
import { imagePreload } from '../bench/image-launch.js';
import { httpsRequest, managed, table, tempDir, writeRoutes, type Proxy } from './support/fixtures.js';
import { freePorts, waitUntil } from './support/process.js';

const run = promisify(execFile);
const repo = fileURLToPath(new URL('../../', import.meta.url));
const resources = managed();

interface RuntimeStage {
  copies: { from: 'repo' | 'build'; source: string; dest: string }[];
  install: string;
  /** The `chmod MODE FILE` and `ln -s TARGET LINK` commands of its RUN lines, in order. */
  fileCommands: string[][];
  entrypoint: string[];
  workdir: string;
}

/** The last stage of the Dockerfile, as the steps this test can replay. */
function runtimeStage(dockerfile: string): RuntimeStage {
  const lines = dockerfile.replace(/\\\n/g, ' ').split('\n').map((l) => l.trim());
  const stage = lines.slice(lines.map((l) => l.startsWith('FROM ')).lastIndexOf(true));
  const stageInfo: RuntimeStage = { copies: [], install: '', fileCommands: [], entrypoint: [], workdir: '/' };
  for (const line of stage) {
    const [instruction, ...rest] = line.split(/\s+/);
    if (instruction === 'WORKDIR') stageInfo.workdir = rest[0]!;
    if (instruction === 'COPY') {
      const fromBuild = rest[0] === '--from=build';
      const args = fromBuild ? rest.slice(1) : rest;
      const dest = args.at(-1)!;
      for (const source of args.slice(0, -1)) {
        stageInfo.copies.push({ from: fromBuild ? 'build' : 'repo', source: fromBuild ? source.replace(/^\/src\//, '') : source, dest });
      }
    }
    if (instruction === 'RUN' && rest[0] === 'npm' && rest[1] === 'ci') stageInfo.install = rest.join(' ').split('&&')[0]!.trim();
    if (instruction === 'RUN') {
      for (const command of rest.join(' ').split('&&').map((c) => c.trim().split(/\s+/))) {
        if (command[0] === 'chmod' || (command[0] === 'ln' && command[1] === '-s')) stageInfo.fileCommands.push(command);
      }
    }
    if (instruction === 'ENTRYPOINT') stageInfo.entrypoint = JSON.parse(rest.join(' ')) as string[];
  }
  return stageInfo;
}

it('replays the image\'s runtime stage: production dependencies only, and it serves', { timeout: 180_000 }, async () => {
  const stage = runtimeStage(await fs.readFile(path.join(repo, 'Dockerfile.proximation'), 'utf8'));
  expect(stage.install).toMatch(/^npm ci --omit=dev/);
  expect(stage.entrypoint[0]).toBe('node');
  const image = await tempDir('proximation-image-');
  resources.defer(() => image.close());
  const app = path.join(image.path, stage.workdir);
  if (stage.copies.some((c) => c.source.startsWith('deploy/bundle/'))) {
    // The build stage's `npm run bundle`, which `npm test` does not run.
    await run(process.execPath, [path.join(repo, 'deploy', 'scripts', 'bundle.mjs')]);
  }
  // An absolute path in the image is one below the image's root folder here.
  const inImage = (p: string) => (p.startsWith('/') ? path.join(image.path, p) : path.join(app, p));
  for (const copy of stage.copies) {
    // `COPY a b/` puts a into b/; `COPY dir dest` copies dir's content to dest.
    const target = copy.dest.endsWith('/') ? path.join(inImage(copy.dest), path.basename(copy.source)) : inImage(copy.dest);
    await fs.cp(path.join(repo, copy.source), target, { recursive: true });
  }
  for (const [command, ...args] of stage.fileCommands) {
    if (command === 'chmod') await fs.chmod(inImage(args[1]!), Number.parseInt(args[0]!, 8));
    else {
      await fs.mkdir(path.dirname(inImage(args[2]!)), { recursive: true });
      await fs.symlink(inImage(args[1]!), inImage(args[2]!));
    }
  }
  const [command, ...args] = stage.install.split(' ');
  await run(command!, args, { cwd: app, env: { ...process.env, NODE_ENV: 'production' }, maxBuffer: 16 * 1024 * 1024 });
  const devOnly = ['typescript', 'vitest', 'ws', 'http-proxy'];
  for (const name of devOnly) await expect(fs.access(path.join(app, 'node_modules', name))).rejects.toThrow();

  const entry = stage.entrypoint.slice(1).map((a) => (a.startsWith(stage.workdir) ? path.join(image.path, a) : a));
  const { stdout } = await run(process.execPath, [...entry, '--version'], { cwd: app });
  expect(stdout).toMatch(/^proximation \d+\.\d+\.\d+/);
  // Both commands by name from the image's PATH, as `docker exec` or an app image's entrypoint runs them.
  const onPath = { PATH: `${path.join(image.path, 'usr', 'local', 'bin')}:${process.env.PATH}` };
  expect((await run('proximation', ['--version'], { cwd: '/', env: onPath })).stdout).toBe(stdout);
  expect((await run('deploy', ['--version'], { cwd: '/', env: onPath })).stdout).toMatch(/^deploy \d+\.\d+\.\d+\n$/);

  const upstream = await resources.upstream((_req, res) => res.end('from the image'));
  const state = path.join(image.path, 'le');
  const [http, https, admin] = (await freePorts(3)) as [number, number, number];
  await writeRoutes(path.join(state, 'proximation', 'routes.json'), table([{ name: 'app', hosts: ['app.test'], upstreams: [upstream.origin] }]));
  const preload = imagePreload();
  expect(preload.LD_PRELOAD, 'ENV LD_PRELOAD in Dockerfile.proximation').toBeDefined();
  const child = spawn(process.execPath, [...entry, 'serve'], {
    cwd: app,
    env: {
      ...preload,
      PATH: process.env.PATH,
      NODE_ENV: 'production',
      PROXIMATION_LETSENCRYPT_DIR: state,
      PROXIMATION_HTTP_PORT: String(http),
      PROXIMATION_HTTPS_PORT: String(https),
      PROXIMATION_ADMIN_PORT: String(admin),
      PROXIMATION_LISTEN_ADDRESS: '127.0.0.1',
      PROXIMATION_LOG_FORMAT: 'json',
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  child.stdout.on('data', (c: Buffer) => (output += c.toString()));
  child.stderr.on('data', (c: Buffer) => (output += c.toString()));
  const exited = new Promise((resolve) => child.once('exit', resolve));
  resources.defer(async () => {
    child.kill('SIGKILL');
    await exited;
  });
  await waitUntil(async () => output.includes('proximation is serving') || child.exitCode !== null, 'the image to serve', 20_000);
  expect(output).toContain('proximation is serving');
  expect(await fs.readFile(`/proc/${child.pid}/maps`, 'utf8')).toContain(path.basename(preload.LD_PRELOAD!));
  const ca = await fs.readFile(path.join(state, 'proximation', 'local-ca', 'root.pem'), 'utf8');
  const target = { ca, server: { https: { port: https } } } as unknown as Proxy;
  const res = await httpsRequest(target, 'app.test');
  expect(res.status).toBe(200);
  expect(res.body).toBe('from the image');
  child.kill('SIGTERM');
  expect(await exited).toBe(0);
});

it('runs the second test pass and the benchmark on the Node major the image ships', async () => {
  const dockerfile = await fs.readFile(path.join(repo, 'Dockerfile.proximation'), 'utf8');
  const image = /^ARG NODE_IMAGE=node:(\d+)-slim$/m.exec(dockerfile)?.[1];
  const pkg = JSON.parse(await fs.readFile(path.join(repo, 'package.json'), 'utf8')) as { config?: { lts_node?: string } };
  const lts = /^node@(\d+)\.\d+\.\d+$/.exec(pkg.config?.lts_node ?? '')?.[1];
  expect(image, 'ARG NODE_IMAGE=node:<major>-slim in Dockerfile.proximation').toBeDefined();
  expect(lts, 'config.lts_node = node@<x.y.z> in package.json').toBe(image);
});

/** `.dockerignore` as Docker reads it: a path is left out when it or a folder above it matches a pattern. */
function dockerIgnore(text: string): (relative: string) => boolean {
  const patterns = text
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l !== '' && !l.startsWith('#'))
    .map((p) => new RegExp(`^${p.replace(/[.+^${}()|[\]\\]/g, '\\$&').replace(/\*\*\//g, '\0').replace(/\*/g, '[^/]*').replace(/\?/g, '[^/]').replace(/\0/g, '(.*/)?')}$`));
  return (relative) => {
    const parts = relative.split('/');
    return parts.some((_, i) => patterns.some((p) => p.test(parts.slice(0, i + 1).join('/'))));
  };
}

it('sends the image build a small context: no node_modules, build output, .git or test output, but every file its COPY lines take', async () => {
  const ignored = dockerIgnore(await fs.readFile(path.join(repo, '.dockerignore'), 'utf8'));
  for (const leftOut of ['.git', 'node_modules', 'proximation/node_modules', 'shared/dist', 'proximation/dist', 'deploy/dist', 'proximation/dist-bench', 'deploy/bundle', 'test-results.json', 'shared/tsconfig.tsbuildinfo']) {
    expect(ignored(leftOut), leftOut).toBe(true);
  }
  const context: { file: string; size: number }[] = [];
  const walk = async (relative: string): Promise<void> => {
    for (const entry of await fs.readdir(path.join(repo, relative), { withFileTypes: true })) {
      const child = relative === '' ? entry.name : `${relative}/${entry.name}`;
      if (ignored(child)) continue;
      if (entry.isDirectory()) await walk(child);
      else context.push({ file: child, size: (await fs.stat(path.join(repo, child))).size });
    }
  };
  await walk('');
  const dockerfile = (await fs.readFile(path.join(repo, 'Dockerfile.proximation'), 'utf8')).replace(/\\\n/g, ' ');
  const sources = [...dockerfile.matchAll(/^COPY (?!--from)(.+)$/gm)].flatMap((m) => m[1]!.trim().split(/\s+/).slice(0, -1));
  expect(sources).toContain('shared');
  for (const source of sources) expect(context.some((c) => c.file === source || c.file.startsWith(`${source}/`)), source).toBe(true);
  for (const needed of ['shared/src/index.ts', 'shared/tsconfig.json', 'deploy/scripts/bundle.mjs', 'proximation/src/cli.ts']) {
    expect(context.map((c) => c.file)).toContain(needed);
  }
  // The host's node_modules and build output alone are about 100 MB.
  const megabytes = context.reduce((sum, c) => sum + c.size, 0) / 1024 / 1024;
  expect(megabytes).toBeLessThan(10);
});
