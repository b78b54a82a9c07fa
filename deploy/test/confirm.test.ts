/**
 * Confirmation of risky commands on a real terminal: the bin runs on a pseudo-terminal (util-linux
 * `script`), so stdin.isTTY is what the process sees, not a flag a test sets.
 */
import { readFile } from 'node:fs/promises';
import { describe, expect, it } from 'vitest';
import { readRoutingTableFile } from '@proximation/shared';
import { answerOnce, deployOk, routesWithDev, runDeploy, runDeployOnTerminal } from './helpers.js';

const QUESTION = 'Continue? [y/N] ';

async function devWithTwoVersions(): Promise<string> {
  const routes = await routesWithDev();
  for (const tag of ['devbuild-1', 'devbuild-2']) {
    await deployOk(['register', '--tag', tag, '--upstream', 'http://127.0.0.1:1', '--no-health-check', '--routes', routes]);
  }
  return routes;
}

describe('deploy prune on a terminal', () => {
  it('asks before removing the only rollback target, and changes nothing unless the answer is yes', async () => {
    const routes = await devWithTwoVersions();
    const before = await readFile(routes, 'utf8');
    const refused = await runDeployOnTerminal(['prune', '--site', 'dev', '--keep', '0', '--routes', routes], answerOnce(QUESTION, 'n\n'));
    expect(refused.code).toBe(1);
    expect(refused.output).toContain(`This removes 1 version of dev (devbuild-1), leaving no version to roll back to. ${QUESTION}`);
    expect(refused.output).toContain('deploy: Not confirmed; nothing was pruned.');
    expect(await readFile(routes, 'utf8')).toBe(before);

    const confirmed = await runDeployOnTerminal(['prune', '--site', 'dev', '--keep', '0', '--routes', routes], answerOnce(QUESTION, 'yes\n'));
    expect(confirmed.code).toBe(0);
    expect(confirmed.output).toContain('pruned 1 version of dev: devbuild-1; kept devbuild-2 (active devbuild-2)');
    expect((await readRoutingTableFile(routes)).sites[0]!.versions.map((v) => v.name)).toEqual(['devbuild-2']);
  });

  it('does not ask with --yes, with --dry-run, or when a rollback target stays', async () => {
    const routes = await devWithTwoVersions();
    await deployOk(['register', '--tag', 'devbuild-3', '--upstream', 'http://127.0.0.1:1', '--no-health-check', '--routes', routes]);
    const dryRun = await runDeployOnTerminal(['prune', '--site', 'dev', '--keep', '0', '--dry-run', '--routes', routes]);
    expect(dryRun).toMatchObject({ code: 0, output: expect.stringContaining('would prune 2 versions of dev') });
    const keepsOne = await runDeployOnTerminal(['prune', '--site', 'dev', '--keep', '2', '--routes', routes]);
    expect(keepsOne.output).not.toContain(QUESTION);
    expect(keepsOne).toMatchObject({ code: 0, output: expect.stringContaining('pruned 1 version of dev: devbuild-1') });
    const yes = await runDeployOnTerminal(['prune', '--site', 'dev', '--keep', '0', '--yes', '--routes', routes]);
    expect(yes.output).not.toContain(QUESTION);
    expect(yes).toMatchObject({ code: 0, output: expect.stringContaining('pruned 1 version of dev: devbuild-2') });
  });
});

describe('deploy site remove', () => {
  it('asks on a terminal, and removes only on yes', async () => {
    const routes = await routesWithDev();
    const refused = await runDeployOnTerminal(['site', 'remove', 'dev', '--routes', routes], answerOnce(QUESTION, '\n'));
    expect(refused.code).toBe(1);
    expect(refused.output).toContain(`This removes site dev (hosts dev.example.com; tag prefix devbuild-; no active version (0 versions)): the proxies stop serving its hosts. ${QUESTION}`);
    expect((await readRoutingTableFile(routes)).sites).toHaveLength(1);
    const confirmed = await runDeployOnTerminal(['site', 'remove', 'dev', '--routes', routes], answerOnce(QUESTION, 'y\n'));
    expect(confirmed).toMatchObject({ code: 0, output: expect.stringContaining('removed site dev') });
    expect((await readRoutingTableFile(routes)).sites).toHaveLength(0);
  });

  it('acts without asking when stdin is not a terminal, as in CI', async () => {
    const routes = await routesWithDev();
    const result = await runDeploy(['site', 'remove', 'dev', '--routes', routes]);
    expect(result).toMatchObject({ code: 0, stderr: '' });
    expect(result.stdout).toMatch(/^removed site dev /);
    expect((await readRoutingTableFile(routes)).sites).toHaveLength(0);
  });
});
