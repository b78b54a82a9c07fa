/**
 * deploy in file mode adds each applied change to the change log beside the routing table, with its
 * user and host; a command that changes nothing adds nothing.
 */
import os from 'node:os';
import { readChangeLog, routesFileLocation } from '@proximation/shared';
import { expect, it } from 'vitest';
import { deployOk, routesWithDev } from './helpers.js';

it('records file-mode changes with the command\'s user and host', async () => {
  const routes = await routesWithDev();
  await deployOk(['register', '--tag', 'devbuild-1', '--upstream', 'http://10.0.2.1:8080', '--no-health-check', '--routes', routes]);
  await deployOk(['register', '--tag', 'devbuild-1', '--upstream', 'http://10.0.2.1:8080', '--no-health-check', '--routes', routes]);
  const log = await readChangeLog(routesFileLocation(routes));
  expect(log.map((entry) => [entry.generation, entry.op, entry.site, entry.version ?? null])).toEqual([
    [2, 'registerVersion', 'dev', 'devbuild-1'],
    [1, 'addSite', 'dev', null],
  ]);
  expect(log[0]!.by).toEqual({ user: os.userInfo().username, host: os.hostname(), via: 'file' });
});
