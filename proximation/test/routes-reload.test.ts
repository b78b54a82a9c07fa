import fs from 'node:fs';
import fsp from 'node:fs/promises';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { bindMount as mountWithBindfs } from '../bench/bind-mount.js';
import { httpRequest, httpsRequest, startProxy, startUpstream, table, tempDir, writeRoutes, type Proxy, type Upstream, managed } from './support/fixtures.js';
import { startServeProcess, waitUntil, within } from './support/process.js';

const resources = managed();
const proxy = resources.proxy;

/** An upstream that answers every request with its own name. */
async function named(name: string): Promise<Upstream> {
  const u = await startUpstream((_req, res) => res.end(name));
  resources.defer(() => u.close());
  return u;
}

function loaded(generation: number) {
  return (line: Record<string, unknown>): boolean => line.msg === 'routing table loaded' && line.generation === generation;
}

function rejected(...mentions: string[]) {
  return (line: Record<string, unknown>): boolean =>
    line.level === 50 && typeof line.err === 'string' && mentions.every((m) => (line.err as string).includes(m));
}

async function generation(p: Proxy): Promise<number> {
  return (JSON.parse((await httpRequest(p.server.admin.port, 'localhost', '/healthz')).body) as { routesGeneration: number }).routesGeneration;
}

describe('routing table reload', () => {
  it('serves a new site and a new upstream without a restart', async () => {
    const a = await named('A');
    const b = await named('B');
    const p = await proxy(table([{ name: 'app', hosts: ['app.test'], upstreams: [a.origin] }], 1));
    expect((await httpsRequest(p, 'app.test')).body).toBe('A');
    // Not routed yet: no certificate, so the handshake fails.
    await expect(httpsRequest(p, 'new.test')).rejects.toThrow();

    await writeRoutes(p.config.routesPath, table([
      { name: 'app', hosts: ['app.test'], upstreams: [b.origin], version: 'v2' },
      { name: 'new', hosts: ['new.test'], upstreams: [a.origin] },
    ], 2));
    await p.waitForLog(loaded(2));

    expect((await httpsRequest(p, 'app.test')).body).toBe('B');
    const fresh = await httpsRequest(p, 'new.test');
    expect(fresh.status).toBe(200);
    expect(fresh.body).toBe('A');
    expect(await generation(p)).toBe(2);
  });

  it('rejects an invalid table with an error naming the file and the problem, and keeps serving the last good one', async () => {
    const a = await named('A');
    const b = await named('B');
    const p = await proxy(table([{ name: 'app', hosts: ['app.test'], upstreams: [a.origin] }], 1));
    const file = p.config.routesPath;

    const tmp = `${file}.broken.tmp`;
    await fsp.writeFile(tmp, '{ "schemaVersion": 1, "generation": 2,\n  "sites": [ oops ] }\n');
    await fsp.rename(tmp, file);
    const syntax = await p.waitForLog(rejected(file, 'not valid JSON', 'line 2'));
    expect(syntax.msg).toContain('still serving the last good one');
    expect((await httpsRequest(p, 'app.test')).body).toBe('A');
    expect(await generation(p)).toBe(1);

    await writeRoutes(file, table([{ name: 'app', hosts: ['app.test'], upstreams: ['ftp://x'], version: 'v2' }], 2));
    await p.waitForLog(rejected(file, 'sites[0].versions[0].upstreams[0]', 'ftp://x'));
    expect((await httpsRequest(p, 'app.test')).body).toBe('A');
    expect(await generation(p)).toBe(1);
    expect(p.logs.filter(loaded(2))).toEqual([]);

    // Once the file is fixed, the proxy picks it up.
    await writeRoutes(file, table([{ name: 'app', hosts: ['app.test'], upstreams: [b.origin], version: 'v2' }], 2));
    await p.waitForLog(loaded(2));
    expect((await httpsRequest(p, 'app.test')).body).toBe('B');
  });
});

describe('a routing table that is broken from the start', () => {
  const BROKEN = '{ "schemaVersion": 1, "generation": 4, "sites": [ oops ] }\n';

  async function healthOf(port: number): Promise<{ status: number; body: Record<string, unknown> }> {
    const res = await httpRequest(port, 'localhost', '/healthz');
    return { status: res.status, body: JSON.parse(res.body) as Record<string, unknown> };
  }

  it('answers /healthz 503 with the reason, promises no last good table, and turns healthy once the file is valid', async () => {
    const a = await named('A');
    const p = await proxy(BROKEN);
    const line = await p.waitForLog(rejected(p.config.routesPath, 'not valid JSON'));
    expect(line.msg).not.toContain('still serving');
    expect(line.msg).toContain('no valid routing table has been loaded');
    expect(line.lastGoodCopy).toBeUndefined();
    const before = await healthOf(p.server.admin.port);
    expect(before.status).toBe(503);
    expect(before.body).toMatchObject({ status: 'no-routing-table', routesGeneration: 0 });
    expect(before.body.reason).toContain(p.config.routesPath);
    expect(before.body.reason).toContain('not valid JSON');

    await writeRoutes(p.config.routesPath, table([{ name: 'app', hosts: ['app.test'], upstreams: [a.origin] }], 5));
    await p.waitForLog(loaded(5));
    expect(await healthOf(p.server.admin.port)).toEqual({ status: 200, body: { status: 'ok', routesGeneration: 5 } });
    expect((await httpsRequest(p, 'app.test')).body).toBe('A');
  });

  it('keeps the last good table beside the file, written when the proxy accepts a table, and names it when the file breaks', async () => {
    const a = await named('A');
    const p = await proxy(table([{ name: 'app', hosts: ['app.test'], upstreams: [a.origin] }], 3));
    const copy = `${p.config.routesPath}.last-good`;
    await waitUntil(async () => fs.existsSync(copy), 'the last good copy to be written');
    expect(JSON.parse(await fsp.readFile(copy, 'utf8'))).toMatchObject({ generation: 3 });

    await writeRoutes(p.config.routesPath, BROKEN);
    const line = await p.waitForLog(rejected(p.config.routesPath, 'not valid JSON'));
    expect(line).toMatchObject({ lastGoodCopy: copy, lastGoodCopyGeneration: 3 });
    expect(line.msg).toContain(`still serving the last good one (generation 3); a copy of the last valid table (generation 3) is at ${copy}`);
    // The copy is a table the proxy takes back as it is.
    await fsp.copyFile(copy, p.config.routesPath);
    await waitUntil(async () => p.logs.filter(loaded(3)).length === 2, 'the restored copy to be loaded');
    expect((await healthOf(p.server.admin.port)).status).toBe(200);
  });

  for (const workers of ['1', '2']) {
    it(`answers /healthz 503 as a real process with PROXIMATION_WORKERS=${workers}, then 200 once the file is fixed`, async () => {
      const dir = await tempDir();
      resources.defer(() => dir.close());
      const routes = path.join(dir.path, 'proximation', 'routes.json');
      await writeRoutes(routes, BROKEN);
      const proc = await startServeProcess(dir.path, { PROXIMATION_WORKERS: workers, PROXIMATION_ROUTES_POLL: '200ms' }, 20_000, 503);
      resources.defer(() => proc.kill());
      const before = await healthOf(proc.ports.admin);
      expect(before.body).toMatchObject({ status: 'no-routing-table', routesGeneration: 0 });
      expect(before.body.reason).toContain('not valid JSON');
      expect(proc.cli.stdout() + proc.cli.stderr()).not.toContain('still serving');

      await writeRoutes(routes, table([], 5));
      await waitUntil(async () => (await healthOf(proc.ports.admin)).status === 200, '/healthz to answer 200 after the fix', 10_000);
      expect((await healthOf(proc.ports.admin)).body).toMatchObject({ status: 'ok', routesGeneration: 5 });
    });
  }
});

describe('routing table reload on a file system without change events (NFS-like, bindfs)', () => {
  /** Mounts a new temp directory at another with bindfs; unmounted and removed in cleanup. */
  async function bindMount(): Promise<{ backing: string; mount: string }> {
    const backing = await tempDir('proximation-backing-');
    resources.defer(() => backing.close());
    const mount = await tempDir('proximation-mount-');
    resources.defer(() => mount.close());
    const mounted = await mountWithBindfs(backing.path, mount.path);
    resources.defer(() => mounted.unmount());
    return mounted;
  }

  it('picks up a table written behind the mount within 2 s, although the mount reports no change events', async () => {
    const { backing, mount } = await bindMount();
    const stateOnMount = path.join(mount, 'proximation');
    const stateInBacking = path.join(backing, 'proximation');
    await fsp.mkdir(stateInBacking);

    // The premise: a watcher on the mount hears about writes made through the mount, but not about
    // writes made through the backing directory (as with another NFS client). inotify delivers events in
    // order, so once the event of the later write through the mount has arrived, an event for the
    // earlier write through the backing directory would have arrived before it.
    const events: string[] = [];
    let heard!: () => void;
    const heardMountWrite = new Promise<void>((resolve) => (heard = resolve));
    const watcher = fs.watch(stateOnMount, (_event, name) => {
      events.push(String(name));
      if (String(name).startsWith('from-mount')) heard();
    });
    resources.defer(async () => watcher.close());
    await fsp.writeFile(path.join(stateInBacking, 'from-backing.json.tmp'), '{}');
    await fsp.rename(path.join(stateInBacking, 'from-backing.json.tmp'), path.join(stateInBacking, 'from-backing.json'));
    expect(await fsp.readFile(path.join(stateOnMount, 'from-backing.json'), 'utf8')).toBe('{}');
    await fsp.writeFile(path.join(stateOnMount, 'from-mount.json'), '{}');
    await within(heardMountWrite, 2000, 'fs.watch on the mount reporting a write made through the mount');
    watcher.close();
    expect(events.filter((name) => name.startsWith('from-backing')), 'the bind mount reported a change made behind it; this test would not catch an inotify-based watcher').toEqual([]);

    // A real process, with the default poll interval: this is the production setting.
    const a = await named('A');
    const b = await named('B');
    await writeRoutes(path.join(stateInBacking, 'routes.json'), table([{ name: 'app', hosts: ['app.test'], upstreams: [a.origin] }], 1));
    const proc = await startServeProcess(mount);
    resources.defer(() => proc.kill());
    expect(await proc.routesGeneration()).toBe(1);
    expect((await httpsRequest(proc.target, 'app.test')).body).toBe('A');

    const written = Date.now();
    await writeRoutes(path.join(stateInBacking, 'routes.json'), table([
      { name: 'app', hosts: ['app.test'], upstreams: [b.origin], version: 'v2' },
      { name: 'new', hosts: ['new.test'], upstreams: [a.origin] },
    ], 2));
    await waitUntil(async () => (await proc.routesGeneration()) === 2, 'the proxy to load generation 2 written behind the mount', 2000);
    expect((await httpsRequest(proc.target, 'app.test')).body).toBe('B');
    expect(Date.now() - written).toBeLessThan(2000);
    expect((await httpsRequest(proc.target, 'new.test')).body).toBe('A');
  });
});
