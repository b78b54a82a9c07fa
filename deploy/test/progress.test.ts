/**
 * What deploy register shows while it waits: for a health check and for the routing table's lock held
 * by another host; in-process without a terminal (one line per interval, on stderr), on a real
 * pseudo-terminal (a block rewritten in place, then erased), and nothing with --json.
 */
import { PassThrough } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { acquireLock, emptyRoutingTable, readRoutingTableFile } from '@proximation/shared';
import { TOKEN } from '../../proximation/test/admin/api-request.js';
import { managed } from '../../proximation/test/support/fixtures.js';
import { main } from '../src/cli.js';
import { deployOk, routesWithDev, runDeployOnTerminal, startServer, type TestServer } from './helpers.js';

const the = managed();

/** deploy in-process with captured output; `onStderr` sees stderr so far after each write. */
async function deployWatching(
  argv: string[],
  onStderr: (text: string) => void = () => {},
  env: NodeJS.ProcessEnv = {},
): Promise<{ code: number; stdout: string; stderr: string }> {
  const [stdout, stderr] = [new PassThrough(), new PassThrough()];
  let out = '';
  let err = '';
  stdout.on('data', (c: Buffer) => (out += c.toString()));
  stderr.on('data', (c: Buffer) => {
    err += c.toString();
    onStderr(err);
  });
  const code = await main(argv, env, { stdout, stderr, progressIntervalMs: 20 });
  return { code, stdout: out, stderr: err };
}

/** An upstream answering 503 until `heal()`, then 200. */
async function sickUpstream(): Promise<TestServer & { heal(): void }> {
  let healthy = false;
  const server = await startServer((_req, res) => {
    res.writeHead(healthy ? 200 : 503).end();
  });
  return { ...server, heal: () => (healthy = true) };
}

/** The routing table's lock held by "build-host-7:4242", and a watcher that releases it once the output names that holder. */
async function lockHeldElsewhere(routes: string): Promise<(output: string) => void> {
  const lock = await acquireLock(`${routes}.lock`, { owner: 'build-host-7:4242' });
  let released = false;
  return (output) => {
    if (!released && output.includes('held by build-host-7:4242')) {
      released = true;
      void lock.release();
    }
  };
}

describe('deploy register without a terminal', () => {
  it('prints one line per interval on stderr while the health check waits, naming each failing upstream and its last answer', async () => {
    const routes = await routesWithDev();
    const app = await sickUpstream();
    const result = await deployWatching(['register', '--tag', 'devbuild-1', '--upstream', app.origin, '--health-path', '/healthz', '--routes', routes], (err) => {
      if (err.includes('answered 503')) app.heal();
    });
    expect(result.code).toBe(0);
    expect(result.stdout).toContain('registered dev/devbuild-1 (1 upstream); active after passing the health check');
    const lines = result.stderr.trimEnd().split('\n');
    for (const line of lines) expect(line).toMatch(new RegExp(`^deploy: health check of dev/devbuild-1 \\(GET /healthz\\): \\d+s of 30s, 0 of 1 upstream healthy; ${app.origin}: `));
    expect(lines.at(-1)).toMatch(/: answered 503 Service Unavailable \(attempt \d+\)$/);
    expect(result.stderr).not.toContain('\x1b');
  });

  it('prints who holds the routing table\'s lock while waiting for it', async () => {
    const routes = await routesWithDev();
    const result = await deployWatching(['register', '--tag', 'devbuild-1', '--upstream', 'http://127.0.0.1:1', '--no-health-check', '--routes', routes], await lockHeldElsewhere(routes));
    expect(result.code).toBe(0);
    expect(result.stderr.trimEnd().split('\n').at(-1)).toMatch(
      new RegExp(`^deploy: waiting for the routing table's lock ${routes}\\.lock, held by build-host-7:4242 \\(lease last refreshed \\d+(ms|s) ago, expires 10s after its last refresh\\): \\d+s of 1m$`),
    );
    expect((await readRoutingTableFile(routes)).sites[0]!.activeVersion).toBe('devbuild-1');
  });

  it('says it waits for the proxy while the proxy runs the health check (API mode)', async () => {
    const proxy = await the.proxy(emptyRoutingTable(), { adminToken: TOKEN });
    const admin = `http://127.0.0.1:${proxy.server.admin.port}`;
    const env = { DEPLOY_PROXY_URL: admin, DEPLOY_TOKEN: TOKEN };
    await deployOk(['site', 'add', 'dev', '--host', 'dev.example.com'], env);
    const app = await sickUpstream();
    const result = await deployWatching(
      ['register', '--tag', 'devbuild-1', '--upstream', app.origin],
      (err) => {
        if (err.includes('waiting for the proxy')) app.heal();
      },
      env,
    );
    expect(result.code).toBe(0);
    expect(result.stderr.split('\n')[0]).toMatch(new RegExp(`^deploy: waiting for the proxy ${admin}/ to health-check dev/devbuild-1 \\(GET /\\): \\d+s of 30s$`));
  });

  it('prints nothing but the JSON with --json', async () => {
    const routes = await routesWithDev();
    let answered = 0;
    // Sick for its first 3 answers: at least 500 ms of waiting, 25 progress intervals.
    const app = await startServer((_req, res) => {
      res.writeHead(++answered > 3 ? 200 : 503).end();
    });
    const result = await deployWatching(['register', '--tag', 'devbuild-1', '--upstream', app.origin, '--json', '--routes', routes]);
    expect(result).toMatchObject({ code: 0, stderr: '' });
    expect(JSON.parse(result.stdout)).toMatchObject({ activation: 'activated' });
    expect(answered).toBe(4);
  });
});

describe('deploy register on a terminal', () => {
  it('shows the health check in place with each failing upstream\'s last answer, then erases it', async () => {
    const routes = await routesWithDev();
    const app = await sickUpstream();
    const result = await runDeployOnTerminal(['register', '--tag', 'devbuild-1', '--upstream', app.origin, '--routes', routes], (output) => {
      if (output.includes('answered 503')) app.heal();
    });
    expect(result.code).toBe(0);
    expect(result.output).toMatch(/health check of dev\/devbuild-1 \(GET \/\): \d+s of 30s, 0 of 1 upstream healthy\n {2}http:\/\/127\.0\.0\.1:\d+: answered 503 Service Unavailable \(attempt \d+\)/);
    // The block is erased (cursor up, clear line) before the result is printed.
    const erasedAt = result.output.lastIndexOf('\x1b[1A\x1b[2K');
    expect(erasedAt).toBeGreaterThan(-1);
    expect(result.output.slice(erasedAt)).toMatch(/^\x1b\[1A\x1b\[2Kregistered dev\/devbuild-1 \(1 upstream\); active after passing the health check/);
  });

  it('shows who holds the lock while waiting for it', async () => {
    const routes = await routesWithDev();
    const result = await runDeployOnTerminal(['register', '--tag', 'devbuild-1', '--upstream', 'http://127.0.0.1:1', '--no-health-check', '--routes', routes], await lockHeldElsewhere(routes));
    expect(result.code).toBe(0);
    expect(result.output).toContain(`waiting for the routing table's lock ${routes}.lock, held by build-host-7:4242 (lease last refreshed`);
    expect(result.output).toContain('registered dev/devbuild-1 (1 upstream); active without a health check');
  });
});
