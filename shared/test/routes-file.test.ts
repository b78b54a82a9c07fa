import { readdir, readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { keepLastGoodCopy, lastGoodCopyPath, readRoutingTableFile, updateRoutingTableFile } from '../src/routes-file.js';
import { addSite, emptyRoutingTable, findSite, registerVersion, serializeRoutingTable } from '../src/routing-table.js';
import type { RoutingTable } from '../src/routing-table.js';
import { tempDir } from './helpers.js';

const addDev = (table: RoutingTable): RoutingTable => addSite(table, { name: 'dev', hosts: ['dev.example.com'] });

describe('readRoutingTableFile', () => {
  it('returns an empty table when the file does not exist', async () => {
    const dir = await tempDir();
    expect(await readRoutingTableFile(join(dir, 'routes.json'))).toEqual(emptyRoutingTable());
  });

  it('names the file when its content is invalid', async () => {
    const dir = await tempDir();
    const path = join(dir, 'routes.json');
    await writeFile(path, '{"schemaVersion": 1, "generation": 0, "sites": [], "extra": 1}');
    await expect(readRoutingTableFile(path)).rejects.toMatchObject({
      code: 'ERR_ROUTES_INVALID',
      message: expect.stringContaining(`Invalid routing table ${path}: extra: unknown field`),
    });
  });
});

describe('updateRoutingTableFile', () => {
  it('creates the file (mode 0644, canonical JSON) and releases the lock', async () => {
    const dir = await tempDir();
    const path = join(dir, 'proximation', 'routes.json');
    const result = await updateRoutingTableFile(path, addDev);
    expect(result.changed).toBe(true);
    expect(result.table.generation).toBe(1);
    expect(await readFile(path, 'utf8')).toBe(serializeRoutingTable(result.table));
    expect((await stat(path)).mode & 0o777).toBe(0o644);
    expect((await readdir(join(dir, 'proximation'))).sort()).toEqual(['routes.json', 'routes.json.last-good']);
    expect(await readRoutingTableFile(path)).toEqual(result.table);
    expect(result.created).toBe(true);
  });

  it('keeps every valid generation it writes as the last good copy, which a broken file leaves alone', async () => {
    const dir = await tempDir();
    const path = join(dir, 'routes.json');
    await updateRoutingTableFile(path, addDev);
    const second = await updateRoutingTableFile(path, (t) => addSite(t, { name: 'prod', hosts: ['example.com'] }));
    expect(second.created).toBe(false);
    expect(lastGoodCopyPath(path)).toBe(`${path}.last-good`);
    expect(await readFile(lastGoodCopyPath(path), 'utf8')).toBe(serializeRoutingTable(second.table));
    expect((await stat(lastGoodCopyPath(path))).mode & 0o777).toBe(0o644);
    await writeFile(path, '{ broken');
    await expect(updateRoutingTableFile(path, addDev)).rejects.toMatchObject({ code: 'ERR_ROUTES_INVALID' });
    expect(await readRoutingTableFile(lastGoodCopyPath(path))).toEqual(second.table);
  });

  it('keepLastGoodCopy never replaces a copy of a newer generation', async () => {
    const dir = await tempDir();
    const path = join(dir, 'routes.json');
    const newer = { ...addDev(emptyRoutingTable()), generation: 5 };
    expect(await keepLastGoodCopy(path, newer)).toBe(true);
    expect(await keepLastGoodCopy(path, { ...newer, generation: 4, sites: [] })).toBe(false);
    expect(await keepLastGoodCopy(path, newer)).toBe(false);
    expect(await readRoutingTableFile(lastGoodCopyPath(path))).toEqual(newer);
    // A broken copy is replaced.
    await writeFile(lastGoodCopyPath(path), 'nonsense');
    expect(await keepLastGoodCopy(path, { ...newer, generation: 1 })).toBe(true);
  });

  it('with create: false, refuses a missing file naming it and its source, creating nothing (not even the directory)', async () => {
    const dir = await tempDir();
    const path = join(dir, 'mistyped', 'routes.json');
    await expect(updateRoutingTableFile(path, addDev, { create: false, origin: 'from --routes' })).rejects.toMatchObject({
      code: 'ERR_ROUTES_NOT_FOUND',
      message: expect.stringContaining(`No routing table at ${path} (from --routes)`),
    });
    expect(await readdir(dir)).toEqual([]);
  });

  it('applies the change to what is on disk now', async () => {
    const dir = await tempDir();
    const path = join(dir, 'routes.json');
    await updateRoutingTableFile(path, addDev);
    const { table } = await updateRoutingTableFile(path, (t) =>
      registerVersion(t, { site: 'dev', version: 'v1', upstreams: ['http://app:8080'], registeredAt: new Date(), activate: true }),
    );
    expect(table.generation).toBe(2);
    expect(findSite(await readRoutingTableFile(path), 'dev').activeVersion).toBe('v1');
  });

  it('does not write when nothing changes', async () => {
    const dir = await tempDir();
    const path = join(dir, 'routes.json');
    expect(await updateRoutingTableFile(path, (t) => t)).toEqual({ table: emptyRoutingTable(), changed: false, created: false });
    expect(await readdir(dir)).toEqual([]);
    await updateRoutingTableFile(path, addDev);
    const before = await stat(path);
    const again = await updateRoutingTableFile(path, addDev);
    expect(again.changed).toBe(false);
    expect(again.table.generation).toBe(1);
    expect((await stat(path)).mtimeMs).toBe(before.mtimeMs);
    expect((await stat(path)).ino).toBe(before.ino);
  });

  it('fails with the validation error and leaves an invalid file untouched', async () => {
    const dir = await tempDir();
    const path = join(dir, 'routes.json');
    const broken = '{"schemaVersion": 1, "generation": 3, "sites": [],}';
    await writeFile(path, broken);
    let called = false;
    await expect(
      updateRoutingTableFile(path, (t) => {
        called = true;
        return addDev(t);
      }),
    ).rejects.toMatchObject({ code: 'ERR_ROUTES_INVALID', message: expect.stringContaining(`${path} is not valid JSON: trailing comma`) });
    expect(called).toBe(false);
    expect(await readFile(path, 'utf8')).toBe(broken);
    expect(await readdir(dir)).toEqual(['routes.json']);
  });

  it('leaves the file untouched when the change throws, and releases the lock', async () => {
    const dir = await tempDir();
    const path = join(dir, 'routes.json');
    await updateRoutingTableFile(path, addDev);
    const before = await readFile(path, 'utf8');
    await expect(updateRoutingTableFile(path, (t) => addSite(t, { name: 'dev', hosts: ['other.example.com'] }))).rejects.toMatchObject({ code: 'ERR_SITE_EXISTS' });
    expect(await readFile(path, 'utf8')).toBe(before);
    expect((await readdir(dir)).sort()).toEqual(['routes.json', 'routes.json.last-good']);
  });

  it('counts one generation per write, however many operations the change composes', async () => {
    const dir = await tempDir();
    const path = join(dir, 'routes.json');
    const { table } = await updateRoutingTableFile(path, (t) =>
      registerVersion(addSite(t, { name: 'dev', hosts: ['dev.example.com'] }), {
        site: 'dev', version: 'v1', upstreams: ['http://10.0.0.1:80'], registeredAt: new Date(), activate: true,
      }),
    );
    expect(table.generation).toBe(1);
    expect((await readRoutingTableFile(path)).generation).toBe(1);
  });

  it('refuses to write a new table that is invalid', async () => {
    const dir = await tempDir();
    const path = join(dir, 'routes.json');
    await expect(
      updateRoutingTableFile(path, (t) => ({
        ...t,
        generation: t.generation + 1,
        sites: [{ name: 'dev', hosts: ['Not Normal'], activeVersion: null, history: [], versions: [] }],
      })),
    ).rejects.toMatchObject({ code: 'ERR_ROUTES_INVALID', message: expect.stringContaining(`the new routing table for ${path}: sites[0].hosts[0]`) });
    expect(await readdir(dir)).toEqual([]);
  });

  it('serialises concurrent updates so that none is lost', async () => {
    const dir = await tempDir();
    const path = join(dir, 'routes.json');
    await updateRoutingTableFile(path, addDev);
    await Promise.all(
      Array.from({ length: 8 }, (_, i) =>
        updateRoutingTableFile(path, (t) =>
          registerVersion(t, { site: 'dev', version: `v${i}`, upstreams: [`http://app-${i}:8080`], registeredAt: new Date(), activate: false }),
        ),
      ),
    );
    const table = await readRoutingTableFile(path);
    expect(table.generation).toBe(9);
    expect(findSite(table, 'dev').versions.map((v) => v.name).sort()).toEqual(['v0', 'v1', 'v2', 'v3', 'v4', 'v5', 'v6', 'v7']);
  });
});
