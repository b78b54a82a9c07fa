/**
 * Convergence (convergence.ts): the table-changing commands wait until every live instance's heartbeat
 * shows the generation written, say how many confirmed, and exit 1 naming the lagging ones on timeout
 * while the change stays made. Heartbeats are real records in the directory, written as an instance
 * writes them (the process-level path is heartbeat.ts's, tested in proximation/test/fleet).
 */
import { dirname } from 'node:path';
import { describe, expect, it } from 'vitest';
import { fileFleetStorage, findSite, readRoutingTableFile } from '@proximation/shared';
import { deploy, deployOk, routesWithDev } from './helpers.js';

const register = (routes: string, ...args: string[]) => ['register', '--tag', 'devbuild-1', '--no-health-check', '--upstream', 'http://10.0.0.5:8080', '--routes', routes, ...args];

function heartbeat(routes: string, id: string, routesGeneration: number) {
  const now = new Date().toISOString();
  return fileFleetStorage(dirname(routes)).putInstance({
    id, host: 'proxy', pid: 1, addresses: [], startedAt: now, writtenAt: now, periodMs: 60_000, routesGeneration, workers: 1, certificates: [], traffic: [],
  });
}

describe('convergence of register, activate, rollback and deregister', () => {
  it('says that no live instance confirmed when there is none, and skips the wait with --no-wait', async () => {
    const routes = await routesWithDev();
    expect(await deployOk(register(routes))).toMatch(/; no live proxy instance to confirm it \(no heartbeat at .*routes\.json\); a proxy that starts loads it\n$/);
    const json = JSON.parse(await deployOk(['deregister', '--tag', 'devbuild-1', '--upstream', 'http://10.0.0.5:8080', '--routes', routes, '--no-wait', '--json']));
    expect(json).toMatchObject({ changed: true, convergence: null });
  });

  it('returns once every live instance serves the generation, and times out naming the one that lags; the change stays made', async () => {
    const routes = await routesWithDev();
    const generation = (await readRoutingTableFile(routes)).generation;
    await heartbeat(routes, 'proxy-a', generation + 1);
    await heartbeat(routes, 'proxy-b', generation);
    const late = await deploy(register(routes, '--converge-timeout', '1s'));
    expect(late.code).toBe(1);
    expect(late.stderr).toMatch(/registered dev\/devbuild-1 .*; but after 1s, 1 of 2 live proxy instances still serve an older table: proxy-b \(generation \d+, heartbeat \d+m?s old\)\. The change stays made/);
    const table = await readRoutingTableFile(routes);
    expect(findSite(table, 'dev').activeVersion).toBe('devbuild-1');

    // proxy-b catches up while rollback's change waits: it returns, counting both.
    await deployOk(register(routes, '--no-wait').map((a) => (a === 'devbuild-1' ? 'devbuild-2' : a)));
    const rolling = deploy(['rollback', '--site', 'dev', '--routes', routes, '--json']);
    await new Promise((resolve) => setTimeout(resolve, 500));
    const next = (await readRoutingTableFile(routes)).generation;
    await heartbeat(routes, 'proxy-a', next);
    await heartbeat(routes, 'proxy-b', next);
    const rolled = await rolling;
    expect(rolled.code).toBe(0);
    expect(JSON.parse(rolled.stdout)).toMatchObject({ to: 'devbuild-1', convergence: { generation: next, confirmed: 2, instances: ['proxy-a', 'proxy-b'] } });
    expect(await deployOk(['activate', '--site', 'dev', '--version', 'devbuild-1', '--routes', routes])).toMatch(/served by all 2 live proxy instances\n$/);
  });

  it('refuses --no-wait with --converge-timeout, and a malformed timeout, before changing anything', async () => {
    const routes = await routesWithDev();
    const both = await deploy(register(routes, '--no-wait', '--converge-timeout', '5s'));
    expect(both.code).toBe(2);
    expect(both.stderr).toContain('Give either --no-wait or --converge-timeout, not both.');
    const bad = await deploy(['rollback', '--site', 'dev', '--routes', routes, '--converge-timeout', 'soon']);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain('--converge-timeout');
    expect(findSite(await readRoutingTableFile(routes), 'dev').versions).toEqual([]);
  });
});
