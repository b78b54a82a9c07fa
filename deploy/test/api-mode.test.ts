import { readFile, writeFile } from 'node:fs/promises';
import type http from 'node:http';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { HealthCheckFailedError, emptyRoutingTable, findSite, readRoutingTableFile } from '@proximation/shared';
import { apiTarget } from '../src/api-target.js';
import { TOKEN } from '../../proximation/test/admin/api-request.js';
import { httpsRequest, managed, type Proxy } from '../../proximation/test/support/fixtures.js';
import { deploy, deployOk, refusingOrigin, startServer, tempDir, upstream } from './helpers.js';
import type { Run } from './helpers.js';

const the = managed();

/** An in-process proximation with the admin API on and an empty routing table (generation 0). */
function proxyWithApi(settings: Parameters<typeof the.proxy>[1] = {}): Promise<Proxy> {
  return the.proxy(emptyRoutingTable(), { adminToken: TOKEN, ...settings });
}

const adminUrl = (proxy: Proxy) => `http://127.0.0.1:${proxy.server.admin.port}`;
const apiEnv = (proxy: Proxy): NodeJS.ProcessEnv => ({ DEPLOY_PROXY_URL: adminUrl(proxy), DEPLOY_TOKEN: TOKEN });

/** An upstream answering `body` (200) to everything and recording who sent each request. */
async function app(body: string, status = 200) {
  const agents: (string | undefined)[] = [];
  const server = await startServer((req: http.IncomingMessage, res: http.ServerResponse) => {
    agents.push(req.headers['user-agent']);
    res.writeHead(status, { 'content-type': 'text/plain' });
    res.end(body);
  });
  return { ...server, agents };
}

/** Output with registration times blanked, so runs at different moments compare equal. */
const timeless = (text: string) => text.replace(/\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z/g, '<time>');

describe('deploy in API mode', () => {
  it('runs every command with the same results as in file mode', async () => {
    const routes = join(await tempDir(), 'routes.json');
    // As the proxy's table exists (empty), so does the file: creating one is file mode's own answer.
    await writeFile(routes, '{"schemaVersion": 1, "generation": 0, "sites": []}\n');
    const proxy = await proxyWithApi();
    const [app1, app2, broken] = [await upstream(200), await upstream(204), await upstream(500)];
    const script: string[][] = [
      ['site', 'add', 'dev', '--host', 'dev.example.com'],
      ['site', 'add', 'prod', '--host', 'example.com', '--host', 'www.example.com', '--json'],
      ['site', 'add', 'dev', '--host', 'dev.example.com'],
      ['site', 'list'],
      ['register', '--no-wait', '--tag', 'devbuild-1', '--upstream', app1.origin],
      ['register', '--no-wait', '--tag', 'devbuild-2', '--upstream', app2.origin, '--health-path', '/healthz', '--json'],
      // 1ms: exactly one attempt, so the message is the same in both runs.
      ['register', '--no-wait', '--tag', 'devbuild-3', '--upstream', broken.origin, '--health-timeout', '1ms'],
      ['register', '--no-wait', '--tag', 'devbuild-4', '--upstream', app1.origin, '--no-activate'],
      ['register', '--no-wait', '--tag', 'devbuild-4', '--upstream', app2.origin, '--join', '--json'],
      ['register', '--no-wait', '--tag', 'devbuild-4', '--upstream', broken.origin, '--replace', '--no-health-check', '--no-activate'],
      ['activate', '--no-wait', '--site', 'dev', '--version', 'devbuild-1', '--json'],
      ['activate', '--no-wait', '--site', 'dev', '--version', 'devbuild-3', '--health-timeout', '1ms'],
      ['rollback', '--no-wait', '--site', 'dev'],
      ['versions', '--site', 'dev'],
      ['remove', '--site', 'dev', '--version', 'devbuild-4'], // active again after the rollback: refused
      ['remove', '--site', 'dev', '--version', 'devbuild-2'],
      ['prune', '--site', 'dev', '--keep', '1', '--json'],
      ['site', 'list', '--json'],
      ['site', 'remove', 'prod'],
      ['rollback', '--no-wait', '--site', 'prod'],
      ['register', '--no-wait', '--tag', 'nightly-1', '--upstream', app1.origin],
      ['site', 'hsts', 'dev', '--max-age', '1y', '--include-subdomains', '--json'],
      ['site', 'hsts', 'dev', '--max-age', '1y', '--include-subdomains'],
      ['site', 'hsts', 'dev', '--max-age', '1d', '--preload'],
      ['site', 'add', 'blog', '--host', 'blog.example.com', '--hsts-max-age', '1w'],
      ['site', 'add', 'blog', '--host', 'blog.example.com', '--hsts-max-age', '2w'],
      ['site', 'hsts', 'blog', '--max-age', 'off'],
    ];
    const inFileMode: Run[] = [];
    for (const args of script) inFileMode.push(await deploy(args, { PROXIMATION_ROUTES: routes }));
    const inApiMode: Run[] = [];
    for (const args of script) inApiMode.push(await deploy(args, apiEnv(proxy)));

    const normalised = (runs: Run[]) => runs.map((r) => ({ ...r, stdout: timeless(r.stdout) }));
    expect(normalised(inApiMode)).toEqual(normalised(inFileMode));
    expect(inApiMode.map((r) => r.code)).toEqual([0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0, 0, 1, 0, 0, 0, 0, 1, 1, 0, 0, 2, 0, 1, 0]);
    expect(inApiMode[23]!.stderr).toContain('deploy: --preload requires --include-subdomains');
    expect(inApiMode[6]!.stderr).toContain(`  ${broken.origin}: GET / answered 500 Internal Server Error (1 attempt)`);
    const stored = async (path: string) => timeless(await readFile(path, 'utf8'));
    expect(await stored(proxy.config.routesPath)).toBe(await stored(routes));
  });

  it('has the proxy check a new version, activates it once healthy, and serves it', async () => {
    const proxy = await proxyWithApi();
    const v1 = await app('v1');
    await deployOk(['site', 'add', 'dev', '--host', 'dev.example.com'], apiEnv(proxy));
    await deployOk(['register', '--tag', 'devbuild-1', '--upstream', v1.origin, '--health-path', '/healthz'], apiEnv(proxy));
    expect(v1.agents).toEqual(['proximation health check (admin API)']);
    expect((await httpsRequest(proxy, 'dev.example.com')).body).toBe('v1');
  });

  it('sets and clears HSTS through the proxy, which sends the header as soon as deploy returns', async () => {
    const proxy = await proxyWithApi();
    const v1 = await app('v1');
    await deployOk(['site', 'add', 'dev', '--host', 'dev.example.com', '--hsts-max-age', '1h'], apiEnv(proxy));
    await deployOk(['register', '--tag', 'devbuild-1', '--upstream', v1.origin], apiEnv(proxy));
    expect((await httpsRequest(proxy, 'dev.example.com')).headers['strict-transport-security']).toBe('max-age=3600');
    await deployOk(['site', 'hsts', 'dev', '--max-age', '1y', '--include-subdomains', '--preload'], apiEnv(proxy));
    expect((await httpsRequest(proxy, 'dev.example.com')).headers['strict-transport-security']).toBe('max-age=31536000; includeSubDomains; preload');
    await deployOk(['site', 'hsts', 'dev', '--max-age', 'off'], apiEnv(proxy));
    expect((await httpsRequest(proxy, 'dev.example.com')).headers).not.toHaveProperty('strict-transport-security');
  });

  it('keeps the old version serving and exits 1 naming the upstream when the new one fails the proxy\'s check', async () => {
    const proxy = await proxyWithApi();
    const v1 = await app('v1');
    const broken = await app('broken', 503);
    await deployOk(['site', 'add', 'dev', '--host', 'dev.example.com'], apiEnv(proxy));
    await deployOk(['register', '--tag', 'devbuild-1', '--upstream', v1.origin], apiEnv(proxy));
    const result = await deploy(['register', '--tag', 'devbuild-2', '--upstream', broken.origin, '--health-timeout', '400ms'], apiEnv(proxy));
    expect(result).toMatchObject({ code: 1, stdout: '' });
    expect(result.stderr).toContain('deploy: dev/devbuild-2 is registered but NOT active: the upstream did not pass the health check (GET / answering 2xx or 3xx within 400ms):');
    expect(result.stderr).toContain(`  ${broken.origin}: GET / answered 503 Service Unavailable`);
    expect(result.stderr).toContain('dev/devbuild-1 keeps serving.');
    expect(broken.agents.every((agent) => agent === 'proximation health check (admin API)')).toBe(true);
    expect(findSite(await readRoutingTableFile(proxy.config.routesPath), 'dev')).toMatchObject({ activeVersion: 'devbuild-1', versions: [{}, { name: 'devbuild-2' }] });
    expect((await httpsRequest(proxy, 'dev.example.com')).body).toBe('v1');
  });

  it('reads the token from --token-file and never prints it', async () => {
    const proxy = await proxyWithApi();
    const dir = await tempDir();
    const tokenFile = join(dir, 'token');
    await writeFile(tokenFile, `${TOKEN}\n`);
    expect(await deployOk(['site', 'add', 'dev', '--host', 'dev.example.com', '--proxy', adminUrl(proxy), '--token-file', tokenFile])).toContain('added site dev');

    const wrong = join(dir, 'wrong');
    await writeFile(wrong, 'not-the-admin-token-at-all');
    const refused = await deploy(['site', 'list', '--proxy', adminUrl(proxy), '--token-file', wrong]);
    expect(refused).toMatchObject({ code: 1, stdout: '' });
    expect(refused.stderr).toContain('deploy: The admin token of this request is wrong: send "Authorization: Bearer <token>"');
    expect(refused.stderr).not.toContain('not-the-admin-token-at-all');

    const empty = join(dir, 'empty');
    await writeFile(empty, '\n');
    expect((await deploy(['site', 'list', '--proxy', adminUrl(proxy), '--token-file', empty])).stderr).toBe(
      `deploy: The admin token file ${empty} (--token-file) is empty; it must hold the proxy's admin token (PROXIMATION_ADMIN_TOKEN).\n`,
    );

    const missing = await deploy(['site', 'list', '--proxy', adminUrl(proxy), '--token-file', join(dir, 'nope')]);
    expect(missing).toMatchObject({ code: 1, stdout: '' });
    expect(missing.stderr).toContain(`deploy: Cannot read the admin token file ${join(dir, 'nope')} (--token-file): ENOENT`);
  });

  it('explains a proxy whose admin API is off, a proxy that is not there, and a server that is not the admin API', async () => {
    const off = await the.proxy(emptyRoutingTable());
    const disabled = await deploy(['site', 'list'], apiEnv(off));
    expect(disabled).toMatchObject({ code: 1, stdout: '' });
    expect(disabled.stderr).toContain('deploy: The admin API is off: no admin token is configured.');

    const nowhere = await refusingOrigin();
    const unreachable = await deploy(['site', 'list', '--proxy', nowhere], { DEPLOY_TOKEN: TOKEN });
    expect(unreachable).toMatchObject({ code: 1, stdout: '' });
    expect(unreachable.stderr).toContain(`deploy: The proxy's admin API at ${nowhere}/api/routes refused the connection (ECONNREFUSED).`);

    const web = await upstream(200);
    const notApi = await deploy(['site', 'list', '--proxy', `${web.origin}/`], { DEPLOY_TOKEN: TOKEN });
    expect(notApi).toMatchObject({ code: 1, stdout: '' });
    expect(notApi.stderr).toContain(`deploy: ${web.origin}/api/routes answered 200 OK with text/plain, not the admin API's JSON.`);
  });

  it.each([
    [['--routes', 'routes.json', '--proxy', 'http://127.0.0.1:9180'], { DEPLOY_TOKEN: TOKEN }, 'Give either --routes FILE (the routing table file) or --proxy URL'],
    [['--proxy', 'http://127.0.0.1:9180'], {}, "The proxy's admin API needs its token: pass --token-file FILE"],
    [['--proxy', '127.0.0.1:9180'], { DEPLOY_TOKEN: TOKEN }, 'Invalid --proxy "127.0.0.1:9180"'],
    [['--proxy', 'http://admin:secret@127.0.0.1:9180'], { DEPLOY_TOKEN: TOKEN }, 'Invalid --proxy "http://admin:secret@127.0.0.1:9180": it must not contain credentials'],
    [[], { DEPLOY_PROXY_URL: 'ftp://127.0.0.1', DEPLOY_TOKEN: TOKEN }, 'Invalid DEPLOY_PROXY_URL "ftp://127.0.0.1": the scheme must be http or https'],
    [['--routes', 'routes.json', '--token-file', 'token'], {}, '--token-file only applies with --proxy'],
    [[], { PROXIMATION_ROUTES: 'routes.json', DEPLOY_PROXY_URL: 'http://127.0.0.1:9180' }, 'Both PROXIMATION_ROUTES and DEPLOY_PROXY_URL are set'],
  ])('exits 2 for %j with %j', async (args, env, message) => {
    const result = await deploy(['site', 'list', ...args], env);
    expect(result.code).toBe(2);
    expect(result.stderr).toContain(`deploy: ${message}`);
  });

  it('prefers a flag to the other mode\'s variable', async () => {
    const proxy = await proxyWithApi();
    const routes = join(await tempDir(), 'routes.json');
    await deployOk(['site', 'add', 'dev', '--host', 'dev.example.com', '--proxy', adminUrl(proxy)], { PROXIMATION_ROUTES: routes, DEPLOY_TOKEN: TOKEN });
    await deployOk(['site', 'add', 'prod', '--host', 'example.com', '--routes', routes], apiEnv(proxy));
    expect((await readRoutingTableFile(proxy.config.routesPath)).sites.map((s) => s.name)).toEqual(['dev']);
    expect((await readRoutingTableFile(routes)).sites.map((s) => s.name)).toEqual(['prod']);
  });
});

describe('apiTarget', () => {
  it('rejects with the ProximationError the proxy answered, keeping the results of a failed check', async () => {
    const proxy = await proxyWithApi();
    const target = apiTarget(new URL(adminUrl(proxy)), { value: TOKEN });
    await expect(target.update({ change: { op: 'rollback', site: 'dev' } })).rejects.toMatchObject({
      name: 'ProximationError',
      code: 'ERR_UNKNOWN_SITE',
      message: 'Unknown site "dev": the routing table has no sites yet; add one first (deploy site add).',
    });
    await target.update({ change: { op: 'addSite', site: 'dev', hosts: ['dev.example.com'] } });
    const broken = await upstream(500);
    const failed = target.update({
      change: { op: 'registerVersion', site: 'dev', version: 'v1', upstreams: [broken.origin], activate: true },
      healthCheck: { path: '/', timeoutMs: 1 },
    });
    await expect(failed).rejects.toBeInstanceOf(HealthCheckFailedError);
    await expect(failed).rejects.toMatchObject({
      code: 'ERR_HEALTH_CHECK_FAILED',
      results: [{ upstream: broken.origin, healthy: false, attempts: 1, outcome: 'answered 500 Internal Server Error' }],
    });
    expect(await target.read()).toEqual(await readRoutingTableFile(proxy.config.routesPath));
  });
});
