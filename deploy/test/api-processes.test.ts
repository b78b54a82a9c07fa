import { describe, expect, it } from 'vitest';
import { emptyRoutingTable, findSite, readRoutingTableFile } from '@proximation/shared';
import { TOKEN, apiRequest } from '../../proximation/test/admin/api-request.js';
import { managed, type Proxy } from '../../proximation/test/support/fixtures.js';
import { deployOk, runDeploy, waitUntil } from './helpers.js';

const the = managed();

/** An in-process proximation with the admin API on and an empty routing table. */
function proxyWithApi(settings: Parameters<typeof the.proxy>[1] = {}): Promise<Proxy> {
  return the.proxy(emptyRoutingTable(), { adminToken: TOKEN, ...settings });
}

const apiEnv = (proxy: Proxy): NodeJS.ProcessEnv => ({ DEPLOY_PROXY_URL: `http://127.0.0.1:${proxy.server.admin.port}`, DEPLOY_TOKEN: TOKEN });

describe('deploy processes in API mode', () => {
  const registerAll = (envs: NodeJS.ProcessEnv[]) =>
    Promise.all(
      // Not health-checked: these upstreams are never contacted; this is about concurrent writers.
      Array.from({ length: 10 }, (_, i) =>
        runDeploy(['register', '--tag', `devbuild-${i}`, '--upstream', `http://10.0.2.${i}:8080`, '--no-health-check', '--no-wait'], envs[i % envs.length]),
      ),
    );

  const expectAllTen = async (routesPath: string, results: Awaited<ReturnType<typeof registerAll>>) => {
    for (const result of results) expect(result).toMatchObject({ code: 0, stderr: '' });
    const table = await readRoutingTableFile(routesPath);
    expect(table.generation).toBe(11);
    const dev = findSite(table, 'dev');
    expect(dev.versions.map((v) => v.name).sort()).toEqual(Array.from({ length: 10 }, (_, i) => `devbuild-${i}`).sort());
    expect(new Set([...dev.history, dev.activeVersion])).toEqual(new Set(dev.versions.map((v) => v.name)));
    const generations = results.map((r) => Number(/generation (\d+)$/.exec(r.stdout.trim())?.[1])).sort((a, b) => a - b);
    expect(generations).toEqual([2, 3, 4, 5, 6, 7, 8, 9, 10, 11]);
  };

  it('loses none of 10 versions registered at once through one proxy', async () => {
    const proxy = await proxyWithApi();
    await deployOk(['site', 'add', 'dev', '--host', 'dev.example.com'], apiEnv(proxy));
    await expectAllTen(proxy.config.routesPath, await registerAll([apiEnv(proxy)]));
  });

  it('loses none of 10 versions registered at once through two proxies sharing one directory, which converge on one table', async () => {
    const a = await proxyWithApi();
    const b = await proxyWithApi({ letsencryptDir: a.config.letsencryptDir });
    await deployOk(['site', 'add', 'dev', '--host', 'dev.example.com'], apiEnv(a));
    await expectAllTen(a.config.routesPath, await registerAll([apiEnv(a), apiEnv(b)]));
    const [fromA, fromB] = [await apiRequest(a, 'GET', '/api/routes'), await apiRequest(b, 'GET', '/api/routes')];
    expect(fromB.text).toBe(fromA.text);
    expect(fromB.headers.etag).toBe('"11"');
    const servedGeneration = async (proxy: Proxy) => JSON.parse((await apiRequest(proxy, 'GET', '/healthz')).text).routesGeneration as number;
    await waitUntil(async () => (await servedGeneration(a)) === 11 && (await servedGeneration(b)) === 11, 2_000, 'both proxies to serve generation 11');
  });
});
