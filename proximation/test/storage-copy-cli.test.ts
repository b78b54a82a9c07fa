import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FileStorage, ROUTES_KEY, addSite, updateRoutingTable } from '@proximation/shared';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startRedisServer } from '../../shared/test/redis-server.js';
import type { RedisServer } from '../../shared/test/redis-server.js';
import { runMain } from './support/process.js';

describe('proximation storage copy', () => {
  let server: RedisServer;
  let dir: string;
  beforeAll(async () => {
    server = await startRedisServer({ password: 'copy-secret' });
    dir = await mkdtemp(join(tmpdir(), 'proximation-copy-'));
  });
  afterAll(async () => {
    await server?.stop({ final: true });
    await rm(dir, { recursive: true, force: true });
  });

  it('copies a directory to Redis and back, then copies nothing the second time', async () => {
    const source = join(dir, 'from');
    await updateRoutingTable(new FileStorage(source), ROUTES_KEY, (t) => addSite(t, { name: 'dev', hosts: ['dev.example.com'] }));
    const there = await runMain(['storage', 'copy', '--from', source, '--to', server.url]);
    expect(there).toMatchObject({ code: 0, err: '' });
    expect(there.out).toContain('Copied 2 keys from');
    expect(there.out).not.toContain('copy-secret');
    expect((await runMain(['storage', 'copy', '--from', source, '--to', server.url])).out).toContain('Copied 0 keys');
    const back = join(dir, 'back');
    expect((await runMain(['storage', 'copy', '--from', server.url, '--to', back])).code).toBe(0);
    expect((await new FileStorage(back).read(ROUTES_KEY))!.equals((await new FileStorage(source).read(ROUTES_KEY))!)).toBe(true);
  });

  it('exits non-zero naming the URL without the password: wrong password, unreachable, malformed, missing --to', async () => {
    const wrong = await runMain(['storage', 'copy', '--from', dir, '--to', server.url.replace('copy-secret', 'nope-secret')]);
    expect(wrong.code).not.toBe(0);
    expect(wrong.err).toContain(`127.0.0.1:${server.port}`);
    expect(wrong.err).not.toContain('nope-secret');
    const malformed = await runMain(['storage', 'copy', '--from', dir, '--to', 'redis//x:secret@host']);
    expect(malformed.code).toBe(2);
    expect(malformed.err).toContain('--to');
    expect(malformed.err).not.toContain('secret');
    const prefix = await runMain(['storage', 'copy', '--from', dir, '--to', server.url, '--prefix', 'my fleet']);
    expect(prefix.code).toBe(2);
    expect(prefix.err).toContain('--prefix');
    expect((await runMain(['storage', 'copy', '--from', dir])).code).toBe(2);
    expect((await runMain(['storage', '--from', dir])).code).toBe(2);
  });
});
