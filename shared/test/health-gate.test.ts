import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { HealthCheckFailedError } from '../src/health-check.js';
import { applyChangeRequest } from '../src/health-gate.js';
import type { RoutingTableStore } from '../src/health-gate.js';
import { readRoutingTableFile, updateRoutingTableFile } from '../src/routes-file.js';
import { applyRoutingTableChange, findSite } from '../src/routing-table.js';
import type { RoutingTableChange } from '../src/routing-table.js';
import { refusingOrigin, startServer, tempDir, upstream } from './helpers.js';

/** The routing table file in a temp directory as a store, with site dev serving v1 on `v1Upstream`. */
async function devStore(v1Upstream: string): Promise<{ path: string; store: RoutingTableStore }> {
  const path = join(await tempDir(), 'routes.json');
  const store: RoutingTableStore = {
    read: () => readRoutingTableFile(path),
    update: (change) => updateRoutingTableFile(path, (table) => applyRoutingTableChange(table, change, new Date())),
  };
  await store.update({ op: 'addSite', site: 'dev', hosts: ['dev.example.com'] });
  await store.update({ op: 'registerVersion', site: 'dev', version: 'v1', upstreams: [v1Upstream], activate: true });
  return { path, store };
}

const register = (version: string, upstreams: string[], extra: { activate?: boolean; join?: boolean } = {}): RoutingTableChange => ({
  op: 'registerVersion',
  site: 'dev',
  version,
  upstreams,
  activate: true,
  ...extra,
});

describe('applyChangeRequest', () => {
  it('applies a change without a health check in one update, contacting nothing', async () => {
    const v2 = await upstream(200);
    const { path, store } = await devStore('http://127.0.0.1:1');
    const result = await applyChangeRequest(store, { change: register('v2', [v2.origin]) });
    expect(result).toMatchObject({ changed: true, healthChecked: [], table: { generation: 3 } });
    expect(v2.requests).toEqual([]);
    expect(await readRoutingTableFile(path)).toEqual(result.table);
  });

  it('activates only after the upstreams gaining traffic pass the check, with the given user agent', async () => {
    const agents: (string | undefined)[] = [];
    const v2 = await startServer((req, res) => {
      agents.push(req.headers['user-agent']);
      res.writeHead(204).end();
    });
    const { store } = await devStore('http://127.0.0.1:1');
    const result = await applyChangeRequest(
      store,
      { change: register('v2', [v2.origin]), healthCheck: { path: '/healthz', timeoutMs: 1_000 } },
      { userAgent: 'tester' },
    );
    expect(result).toMatchObject({ changed: true, healthChecked: [v2.origin] });
    expect(findSite(result.table, 'dev').activeVersion).toBe('v2');
    expect(v2.requests).toEqual(['GET /healthz']);
    expect(agents).toEqual(['tester']);
  });

  it('throws HealthCheckFailedError naming the change and what keeps serving, and changes nothing', async () => {
    const refusing = await refusingOrigin();
    const { path, store } = await devStore('http://127.0.0.1:1');
    const before = await readFile(path, 'utf8');
    const failed = applyChangeRequest(store, { change: register('v2', [refusing]), healthCheck: { path: '/', timeoutMs: 1 } });
    await expect(failed).rejects.toBeInstanceOf(HealthCheckFailedError);
    await expect(failed).rejects.toMatchObject({
      code: 'ERR_HEALTH_CHECK_FAILED',
      message:
        'Did not activate dev/v2: the upstream did not pass the health check (GET / answering 2xx or 3xx within 1ms):\n' +
        `  ${refusing}: GET / refused the connection (ECONNREFUSED) (1 attempt)\n` +
        'Nothing changed: dev/v1 keeps serving. Make the upstreams answer GET / with a 2xx or 3xx status, then send the change again.',
      results: [{ upstream: refusing, healthy: false, attempts: 1, outcome: 'refused the connection (ECONNREFUSED)' }],
    });
    const adding = applyChangeRequest(store, { change: register('v1', [refusing], { activate: false, join: true }), healthCheck: { path: '/', timeoutMs: 1 } });
    await expect(adding).rejects.toThrow('Did not add upstreams to dev/v1, the active version: ');
    await expect(adding).rejects.toThrow('Nothing changed: dev/v1 keeps serving on the upstreams it had.');
    expect(await readFile(path, 'utf8')).toBe(before);
  });

  it('fails a change that would fail anyway before checking anything', async () => {
    const v2 = await upstream(200);
    const { store } = await devStore('http://127.0.0.1:1');
    await expect(
      applyChangeRequest(store, { change: { op: 'activateVersion', site: 'dev', version: 'v9' }, healthCheck: { path: '/', timeoutMs: 1_000 } }),
    ).rejects.toMatchObject({ code: 'ERR_UNKNOWN_VERSION' });
    await expect(applyChangeRequest(store, { change: register('v2', [v2.origin]), healthCheck: { path: '/', timeoutMs: 1_000 } }, { signal: AbortSignal.abort(new Error('gone')) }))
      .rejects.toThrow('gone');
    expect(v2.requests).toEqual(['GET /']); // checked, then stopped before the change was sent
  });

  it('refuses a health check for a change without a guard, or one that brings its own checked upstreams', async () => {
    const { store } = await devStore('http://127.0.0.1:1');
    await expect(applyChangeRequest(store, { change: { op: 'rollback', site: 'dev' }, healthCheck: { path: '/', timeoutMs: 1 } })).rejects.toMatchObject({
      code: 'ERR_INVALID_ARGUMENT',
      message: expect.stringContaining('registerVersion and activateVersion only, not to rollback'),
    });
    const vouched: RoutingTableChange = { op: 'activateVersion', site: 'dev', version: 'v1', guard: { checkedUpstreams: ['http://x'] } };
    await expect(applyChangeRequest(store, { change: vouched, healthCheck: { path: '/', timeoutMs: 1 } })).rejects.toMatchObject({ code: 'ERR_INVALID_ARGUMENT' });
  });
});
