/**
 * The change log beside the routes file: concurrent appends lose no entry, the newest
 * MAX_CHANGE_LOG_ENTRIES are kept newest first, long actor text is cut, and an unreadable log reads as
 * empty instead of failing.
 */
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { expect, it } from 'vitest';
import { MAX_ACTOR_TEXT, MAX_CHANGE_LOG_ENTRIES, appendChangeLogEntry, changeLogKey, readChangeLog } from '../src/change-log.js';
import { routesFileLocation } from '../src/routes-file.js';
import { tempDir } from './helpers.js';

const entry = (generation: number, user = 'ops') => ({ generation, at: new Date(0).toISOString(), op: 'rollback', site: 'app', by: { user, via: 'admin-api' as const } });

it('keeps every one of concurrent appends, newest first', async () => {
  const routes = routesFileLocation(path.join(await tempDir(), 'routes.json'));
  await Promise.all(Array.from({ length: 12 }, (_, i) => appendChangeLogEntry(routes, entry(i + 1))));
  expect((await readChangeLog(routes)).map((e) => e.generation)).toEqual(Array.from({ length: 12 }, (_, i) => 12 - i));
});

it('keeps only the newest entries, cuts long actor text, and reads a broken log as empty', async () => {
  const routes = routesFileLocation(path.join(await tempDir(), 'routes.json'));
  for (let i = 1; i <= MAX_CHANGE_LOG_ENTRIES + 3; i += 1) await appendChangeLogEntry(routes, entry(i, 'x'.repeat(MAX_ACTOR_TEXT + 50)));
  const log = await readChangeLog(routes);
  expect(log).toHaveLength(MAX_CHANGE_LOG_ENTRIES);
  expect(log[0]!.generation).toBe(MAX_CHANGE_LOG_ENTRIES + 3);
  expect(log[0]!.by.user).toHaveLength(MAX_ACTOR_TEXT);
  await writeFile(path.join(routes.storage.location, changeLogKey(routes.key)), '{not json');
  expect(await readChangeLog(routes)).toEqual([]);
});
