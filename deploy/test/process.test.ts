import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { findSite, readRoutingTableFile } from '@proximation/shared';
import { DEPLOY_BIN as BIN, runDeploy as run, tempDir, upstream } from './helpers.js';

describe('deploy as a process', () => {
  it('keeps its shebang', async () => {
    expect((await readFile(BIN, 'utf8')).startsWith('#!/usr/bin/env node\n')).toBe(true);
  });

  it('adds a site and registers a version, exiting 0, 1 and 2 as documented', async () => {
    const routes = join(await tempDir(), 'routes.json');
    expect(await run(['site', 'add', 'dev', '--host', 'dev.example.com'], { PROXIMATION_ROUTES: routes })).toEqual({
      code: 0,
      stdout: `created a new routing table at ${routes}; added site dev (hosts dev.example.com; tag prefix devbuild-); routing table generation 1\n`,
      stderr: '',
    });
    const app = await upstream(200);
    expect(await run(['register', '--no-wait', '--tag', 'devbuild-42', '--upstream', app.origin, '--routes', routes])).toEqual({
      code: 0,
      stdout: 'registered dev/devbuild-42 (1 upstream); active after passing the health check (was none); routing table generation 3\n',
      stderr: '',
    });
    expect(app.requests).toEqual(['GET /']);
    const failed = await run(['register', '--tag', 'devbuild-43', '--upstream', 'ftp://x', '--routes', routes]);
    expect(failed.code).toBe(2);
    expect(failed.stderr).toMatch(/^deploy: Invalid upstream "ftp:\/\/x"/);
    const usage = await run(['register', '--tag', 'devbuild-43']);
    expect(usage.code).toBe(2);
    expect((await run(['--version'])).stdout).toMatch(/^deploy \d+\.\d+\.\d+\n$/);
  });

  it('finds the table from PROXIMATION_LETSENCRYPT_DIR alone, as proximation does; PROXIMATION_ROUTES and --routes win over it', async () => {
    const dir = (await tempDir());
    const own = join(dir, 'proximation', 'routes.json');
    expect(await run(['site', 'add', 'dev', '--host', 'dev.example.com'], { PROXIMATION_LETSENCRYPT_DIR: dir })).toMatchObject({ code: 0, stderr: '' });
    expect((await readRoutingTableFile(own)).sites.map((s) => s.name)).toEqual(['dev']);
    const moved = join((await tempDir()), 'routes.json');
    expect((await run(['site', 'add', 'blog', '--host', 'blog.example.com'], { PROXIMATION_LETSENCRYPT_DIR: dir, PROXIMATION_ROUTES: moved })).code).toBe(0);
    const flagged = join((await tempDir()), 'routes.json');
    expect((await run(['site', 'add', 'web', '--host', 'web.example.com', '--routes', flagged], { PROXIMATION_LETSENCRYPT_DIR: dir, PROXIMATION_ROUTES: moved })).code).toBe(0);
    expect((await readRoutingTableFile(own)).sites.map((s) => s.name)).toEqual(['dev']);
    expect((await readRoutingTableFile(moved)).sites.map((s) => s.name)).toEqual(['blog']);
    expect((await readRoutingTableFile(flagged)).sites.map((s) => s.name)).toEqual(['web']);
    const both = await run(['site', 'list'], { PROXIMATION_LETSENCRYPT_DIR: dir, DEPLOY_PROXY_URL: 'http://127.0.0.1:9' });
    expect(both.code).toBe(2);
    expect(both.stderr).toContain('Both PROXIMATION_LETSENCRYPT_DIR and DEPLOY_PROXY_URL are set');
  });

  it('keeps the old version serving and exits 1 when the new one fails its health check, then rolls back and lists as JSON', async () => {
    const routes = join(await tempDir(), 'routes.json');
    const env = { PROXIMATION_ROUTES: routes };
    const [v1, v2, broken] = [await upstream(200), await upstream(200), await upstream(500)];
    expect((await run(['site', 'add', 'dev', '--host', 'dev.example.com'], env)).code).toBe(0);
    expect((await run(['register', '--tag', 'devbuild-1', '--upstream', v1.origin], env)).code).toBe(0);
    expect((await run(['register', '--tag', 'devbuild-2', '--upstream', v2.origin], env)).code).toBe(0);
    const failed = await run(['register', '--tag', 'devbuild-3', '--upstream', broken.origin, '--health-timeout', '500ms'], env);
    expect(failed).toMatchObject({ code: 1, stdout: '' });
    expect(failed.stderr).toContain(`  ${broken.origin}: GET / answered 500 Internal Server Error`);
    expect(failed.stderr).toContain('dev/devbuild-2 keeps serving.');
    expect(await run(['rollback', '--site', 'dev', '--no-wait'], env)).toEqual({ code: 0, stdout: 'rolled back dev from devbuild-2 to devbuild-1; routing table generation 7\n', stderr: '' });
    const listed = await run(['versions', '--site', 'dev', '--json'], env);
    expect(listed.code).toBe(0);
    expect(JSON.parse(listed.stdout)).toMatchObject({
      activeVersion: 'devbuild-1',
      rollbackOrder: [],
      versions: [{ name: 'devbuild-1', active: true }, { name: 'devbuild-2', active: false }, { name: 'devbuild-3', active: false }],
    });
  });

  it('loses none of 10 versions registered by 10 processes at once', async () => {
    const routes = join(await tempDir(), 'routes.json');
    expect((await run(['site', 'add', 'dev', '--host', 'dev.example.com', '--routes', routes])).code).toBe(0);
    const results = await Promise.all(
      // Not health-checked: these upstreams are never contacted; this is about the lock.
      Array.from({ length: 10 }, (_, i) => run(['register', '--tag', `devbuild-${i}`, '--upstream', `http://10.0.2.${i}:8080`, '--no-health-check', '--no-wait', '--routes', routes])),
    );
    for (const result of results) {
      expect(result.stderr).toBe('');
      expect(result.code).toBe(0);
    }
    const table = await readRoutingTableFile(routes);
    expect(table.generation).toBe(11);
    const dev = findSite(table, 'dev');
    expect(dev.versions.map((v) => v.name).sort()).toEqual(Array.from({ length: 10 }, (_, i) => `devbuild-${i}`).sort());
    // Each registration activated its version in turn: the last one is active, the other nine are history.
    expect(dev.history).toHaveLength(9);
    expect(new Set([...dev.history, dev.activeVersion])).toEqual(new Set(dev.versions.map((v) => v.name)));
    // The generations the processes reported are 2..11, each exactly once.
    const generations = results.map((r) => Number(/generation (\d+)$/.exec(r.stdout.trim())?.[1])).sort((a, b) => a - b);
    expect(generations).toEqual([2, 3, 4, 5, 6, 7, 8, 9, 10, 11]);
  });
});
