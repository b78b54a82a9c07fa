import { mkdir, readdir, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { fsyncDirectory, readFileIfExists, writeFileAtomic } from '../src/file-storage.js';
import { runFixture, tempDir } from './helpers.js';

describe('writeFileAtomic', () => {
  it('creates missing parent directories and writes string or bytes content', async () => {
    const dir = await tempDir();
    const path = join(dir, 'a', 'b', 'routes.json');
    await writeFileAtomic(path, 'hello\n');
    expect((await readFileIfExists(path))?.toString()).toBe('hello\n');
    await writeFileAtomic(path, new Uint8Array([1, 2, 3]));
    expect([...((await readFileIfExists(path)) ?? [])]).toEqual([1, 2, 3]);
    expect(await readdir(join(dir, 'a', 'b'))).toEqual(['routes.json']);
  });

  it('sets exactly the requested mode (default 0644), regardless of the umask', async () => {
    const dir = await tempDir();
    await writeFileAtomic(join(dir, 'key.pem'), 'secret', { mode: 0o600 });
    await writeFileAtomic(join(dir, 'public'), 'x', { mode: 0o666 });
    await writeFileAtomic(join(dir, 'default'), 'x');
    expect((await stat(join(dir, 'key.pem'))).mode & 0o777).toBe(0o600);
    expect((await stat(join(dir, 'public'))).mode & 0o777).toBe(0o666);
    expect((await stat(join(dir, 'default'))).mode & 0o777).toBe(0o644);
  });

  it('never lets a reader in another process see a partial, empty or missing file', async () => {
    const dir = await tempDir();
    const path = join(dir, 'big.bin');
    const size = 1 << 20;
    const contents = [Buffer.alloc(size, 'a'), Buffer.alloc(size, 'b')] as const;
    await writeFileAtomic(path, contents[0]);
    const reader = runFixture('read-loop.mjs', [path, String(size)]);
    await reader.firstLine;
    for (let i = 1; i <= 30; i++) await writeFileAtomic(path, contents[i % 2]!);
    reader.process.stdin.end();
    const { code, stdout } = await reader.exited;
    expect(code).toBe(0);
    const summary = JSON.parse(stdout.trim().split('\n').at(-1)!) as { bad: number; firstBad: string | null; sawA: number; sawB: number };
    expect(summary.firstBad).toBeNull();
    expect(summary.bad).toBe(0);
    // Both contents were observed, so reads really overlapped the rewrites.
    expect(summary.sawA).toBeGreaterThan(0);
    expect(summary.sawB).toBeGreaterThan(0);
  });

  it('removes its temp file and names the path when the rename fails', async () => {
    const dir = await tempDir();
    const target = join(dir, 'taken');
    await mkdir(target);
    await writeFile(join(target, 'inside'), 'x');
    await expect(writeFileAtomic(target, 'data')).rejects.toMatchObject({
      code: 'ERR_FILE_WRITE',
      message: expect.stringContaining(`Could not write ${target}:`),
    });
    expect(await readdir(dir)).toEqual(['taken']);
  });

  it('fails with ERR_FILE_WRITE when the parent is not a directory', async () => {
    const dir = await tempDir();
    await writeFile(join(dir, 'file'), 'x');
    await expect(writeFileAtomic(join(dir, 'file', 'child'), 'data')).rejects.toMatchObject({ code: 'ERR_FILE_WRITE' });
    expect(await readdir(dir)).toEqual(['file']);
  });
});

describe('readFileIfExists', () => {
  it('returns undefined for a missing file and throws ERR_FILE_READ for other failures', async () => {
    const dir = await tempDir();
    expect(await readFileIfExists(join(dir, 'missing'))).toBeUndefined();
    await expect(readFileIfExists(dir)).rejects.toMatchObject({ code: 'ERR_FILE_READ', message: expect.stringContaining(dir) });
  });
});

describe('fsyncDirectory', () => {
  it('syncs an existing directory and reports a missing one', async () => {
    const dir = await tempDir();
    await fsyncDirectory(dir);
    await expect(fsyncDirectory(join(dir, 'missing'))).rejects.toMatchObject({ code: 'ERR_FILE_WRITE' });
  });
});
