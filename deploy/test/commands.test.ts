import { readFile } from 'node:fs/promises';
import { describe, expect, it } from 'vitest';
import { findSite, readRoutingTableFile } from '@proximation/shared';
import { deploy, deployOk, routesWithDev, upstream } from './helpers.js';

async function dev(routes: string) {
  return findSite(await readRoutingTableFile(routes), 'dev');
}

/** Site dev with versions devbuild-1..count registered in order (never contacted), the last one active. */
async function devWithVersions(count: number): Promise<string> {
  const routes = await routesWithDev();
  for (let i = 1; i <= count; i++) {
    await deployOk(['register', '--tag', `devbuild-${i}`, '--upstream', `http://127.0.0.1:${i}`, '--no-health-check', '--routes', routes]);
  }
  return routes;
}

describe('deploy activate', () => {
  it('activates a staged version once its upstreams pass the health check', async () => {
    const routes = await devWithVersions(1);
    const app = await upstream(200);
    await deployOk(['register', '--tag', 'devbuild-2', '--upstream', app.origin, '--no-activate', '--routes', routes]);
    expect(await deployOk(['activate', '--site', 'dev', '--version', 'devbuild-2', '--health-path', '/ready', '--no-wait', '--routes', routes])).toBe(
      'activated dev/devbuild-2 after its upstream passed the health check (was devbuild-1); routing table generation 4\n',
    );
    expect(app.requests).toEqual(['GET /ready']);
    expect(await dev(routes)).toMatchObject({ activeVersion: 'devbuild-2', history: ['devbuild-1'] });
  });

  it('changes nothing and exits 1 when the health check fails, naming the upstream', async () => {
    const routes = await devWithVersions(1);
    const broken = await upstream(502);
    await deployOk(['register', '--tag', 'devbuild-2', '--upstream', broken.origin, '--no-activate', '--routes', routes]);
    const before = await readFile(routes, 'utf8');
    const result = await deploy(['activate', '--site', 'dev', '--version', 'devbuild-2', '--health-timeout', '400ms', '--routes', routes]);
    expect(result).toMatchObject({ code: 1, stdout: '' });
    expect(result.stderr).toContain('deploy: Did not activate dev/devbuild-2: the upstream did not pass the health check (GET / answering 2xx or 3xx within 400ms):');
    expect(result.stderr).toContain(`  ${broken.origin}: GET / answered 502 Bad Gateway`);
    expect(result.stderr).toContain('dev/devbuild-1 keeps serving. Make devbuild-2 answer GET / with a 2xx or 3xx status');
    expect(await readFile(routes, 'utf8')).toBe(before);
  });

  it('activates without contacting the upstreams with --no-health-check, and reports as JSON', async () => {
    const routes = await devWithVersions(2);
    const result = JSON.parse(await deployOk(['activate', '--site', 'dev', '--version', 'devbuild-1', '--no-health-check', '--no-wait', '--json', '--routes', routes]));
    expect(result).toEqual({ site: 'dev', version: 'devbuild-1', changed: true, activeBefore: 'devbuild-2', healthChecked: [], generation: 4, convergence: null });
    expect(await dev(routes)).toMatchObject({ activeVersion: 'devbuild-1', history: ['devbuild-1', 'devbuild-2'] });
  });

  it('changes nothing for the active version', async () => {
    const routes = await devWithVersions(1);
    expect(await deployOk(['activate', '--site', 'dev', '--version', 'devbuild-1', '--no-wait', '--routes', routes])).toBe(
      'dev/devbuild-1 is already active; nothing changed (routing table generation 2)\n',
    );
  });

  it.each([
    [['--site', 'dev', '--version', 'devbuild-9'], 1, 'Site "dev" has no version "devbuild-9": its versions (newest last): devbuild-1.'],
    [['--site', 'stage', '--version', 'devbuild-1'], 1, 'Unknown site "stage": known sites: dev.'],
    [['--version', 'devbuild-1'], 2, 'Missing --site: name the site, such as --site dev.'],
    [['--site', 'dev'], 2, 'Missing --version: name the version to activate, such as --version devbuild-42.'],
    [['--site', 'dev', '--version', 'devbuild-1', '--health-timeout=-1s'], 2, 'Invalid duration "-1s" for --health-timeout'],
  ])('exits %s for %j without touching the routing table', async (args, code, message) => {
    const routes = await devWithVersions(1);
    const before = await readFile(routes, 'utf8');
    const result = await deploy(['activate', ...(args as string[]), '--routes', routes]);
    expect(result).toMatchObject({ code, stdout: '' });
    expect(result.stderr).toContain(`deploy: ${message}`);
    expect(await readFile(routes, 'utf8')).toBe(before);
  });
});

describe('deploy rollback', () => {
  it('goes back one version at a time, at once and without contacting any upstream, until there is no earlier one', async () => {
    const routes = await routesWithDev();
    const apps = [await upstream(200), await upstream(200), await upstream(200)];
    for (const [i, app] of apps.entries()) {
      await deployOk(['register', '--tag', `devbuild-${i + 1}`, '--upstream', app.origin, '--no-health-check', '--routes', routes]);
    }
    expect(await deployOk(['rollback', '--site', 'dev', '--no-wait', '--routes', routes])).toBe('rolled back dev from devbuild-3 to devbuild-2; routing table generation 5\n');
    expect(JSON.parse(await deployOk(['rollback', '--site', 'dev', '--no-wait', '--json', '--routes', routes]))).toEqual({ site: 'dev', from: 'devbuild-2', to: 'devbuild-1', generation: 6, convergence: null });
    expect(await dev(routes)).toMatchObject({ activeVersion: 'devbuild-1', history: [] });
    const before = await readFile(routes, 'utf8');
    const result = await deploy(['rollback', '--site', 'dev', '--routes', routes]);
    expect(result).toMatchObject({ code: 1, stdout: '' });
    expect(result.stderr).toContain('deploy: Site "dev" has no earlier active version to roll back to (its history is empty). Activate a specific version instead.');
    expect(await readFile(routes, 'utf8')).toBe(before);
    for (const app of apps) expect(app.requests).toEqual([]);
  });

  it('exits 2 without --site', async () => {
    const result = await deploy(['rollback', '--routes', await routesWithDev()]);
    expect(result.code).toBe(2);
    expect(result.stderr).toContain('Missing --site');
  });
});

describe('deploy versions', () => {
  it('answers "versions dev" with the hint to write --site dev, exiting 2', async () => {
    const routes = await devWithVersions(1);
    expect(await deploy(['versions', 'dev', '--routes', routes])).toEqual({
      code: 2,
      stdout: '',
      stderr: 'deploy: Unexpected argument "dev"; to name the site, write --site dev.\nRun "deploy versions --help" for usage.\n',
    });
  });

  it('lists versions oldest first with the active one and the rollback order', async () => {
    const routes = await devWithVersions(3);
    await deployOk(['register', '--tag', 'devbuild-10', '--upstream', 'http://127.0.0.1:10', '--upstream', 'http://127.0.0.1:11', '--no-activate', '--routes', routes]);
    const site = await dev(routes);
    const at = (i: number) => site.versions[i]!.registeredAt;
    expect(await deployOk(['versions', '--site', 'dev', '--routes', routes])).toBe(
      'site dev: 4 versions, oldest first, * = active; rollback order: devbuild-2, devbuild-1 (routing table generation 5)\n' +
        `  devbuild-1   ${at(0)}  http://127.0.0.1:1\n` +
        `  devbuild-2   ${at(1)}  http://127.0.0.1:2\n` +
        `* devbuild-3   ${at(2)}  http://127.0.0.1:3\n` +
        `  devbuild-10  ${at(3)}  http://127.0.0.1:10, http://127.0.0.1:11\n`,
    );
    expect(JSON.parse(await deployOk(['versions', '--site', 'dev', '--json', '--routes', routes]))).toEqual({
      generation: 5,
      site: 'dev',
      activeVersion: 'devbuild-3',
      history: ['devbuild-1', 'devbuild-2'],
      rollbackOrder: ['devbuild-2', 'devbuild-1'],
      versions: [
        { name: 'devbuild-1', upstreams: ['http://127.0.0.1:1'], registeredAt: at(0), active: false, previewUrl: null, members: [] },
        { name: 'devbuild-2', upstreams: ['http://127.0.0.1:2'], registeredAt: at(1), active: false, previewUrl: null, members: [] },
        { name: 'devbuild-3', upstreams: ['http://127.0.0.1:3'], registeredAt: at(2), active: true, previewUrl: null, members: [] },
        { name: 'devbuild-10', upstreams: ['http://127.0.0.1:10', 'http://127.0.0.1:11'], registeredAt: at(3), active: false, previewUrl: null, members: [] },
      ],
    });
  });

  it('shows a rollback order that skips repeated entries, as rollback does', async () => {
    const routes = await devWithVersions(2);
    await deployOk(['activate', '--site', 'dev', '--version', 'devbuild-1', '--no-health-check', '--routes', routes]);
    await deployOk(['activate', '--site', 'dev', '--version', 'devbuild-2', '--no-health-check', '--routes', routes]);
    const listed = JSON.parse(await deployOk(['versions', '--site', 'dev', '--json', '--routes', routes]));
    expect(listed).toMatchObject({ history: ['devbuild-1', 'devbuild-2', 'devbuild-1'], rollbackOrder: ['devbuild-1', 'devbuild-2', 'devbuild-1'] });
    for (const expected of listed.rollbackOrder as string[]) {
      expect(JSON.parse(await deployOk(['rollback', '--site', 'dev', '--json', '--routes', routes])).to).toBe(expected);
    }
    expect((await deploy(['rollback', '--site', 'dev', '--routes', routes])).code).toBe(1);
  });

  it('shows a site without versions, and fails for an unknown site', async () => {
    const routes = await routesWithDev();
    expect(await deployOk(['versions', '--site', 'dev', '--routes', routes])).toBe('site dev: 0 versions, oldest first, * = active; rollback order: none (routing table generation 1)\n');
    const unknown = await deploy(['versions', '--site', 'prod', '--routes', routes]);
    expect(unknown).toMatchObject({ code: 1, stdout: '' });
    expect(unknown.stderr).toContain('Unknown site "prod": known sites: dev.');
    expect((await deploy(['versions', '--routes', routes])).code).toBe(2);
  });
});

describe('deploy remove', () => {
  it('removes an inactive version and its history entries', async () => {
    const routes = await devWithVersions(3);
    expect(await deployOk(['remove', '--site', 'dev', '--version', 'devbuild-2', '--routes', routes])).toBe('removed dev/devbuild-2; routing table generation 5\n');
    expect(JSON.parse(await deployOk(['remove', '--site', 'dev', '--version', 'devbuild-1', '--json', '--routes', routes]))).toEqual({ site: 'dev', version: 'devbuild-1', generation: 6 });
    expect(await dev(routes)).toMatchObject({ activeVersion: 'devbuild-3', history: [], versions: [{ name: 'devbuild-3' }] });
  });

  it.each([
    [['--site', 'dev', '--version', 'devbuild-2'], 1, 'Version dev/devbuild-2 is active; activate another version (or roll back) before removing it.'],
    [['--site', 'dev', '--version', 'devbuild-7'], 1, 'Site "dev" has no version "devbuild-7"'],
    [['--site', 'dev'], 2, 'Missing --version'],
    [['--site', 'dev', '--version', 'devbuild-1', 'devbuild-2'], 2, 'Unexpected argument "devbuild-2".'],
  ])('exits %s for %j and leaves the routing table as it was', async (args, code, message) => {
    const routes = await devWithVersions(2);
    const before = await readFile(routes, 'utf8');
    const result = await deploy(['remove', ...(args as string[]), '--routes', routes]);
    expect(result).toMatchObject({ code, stdout: '' });
    expect(result.stderr).toContain(`deploy: ${message}`);
    expect(await readFile(routes, 'utf8')).toBe(before);
  });
});

describe('deploy prune', () => {
  it('keeps the newest versions and the active one', async () => {
    const routes = await devWithVersions(5);
    await deployOk(['activate', '--site', 'dev', '--version', 'devbuild-2', '--no-health-check', '--routes', routes]);
    expect(await deployOk(['prune', '--site', 'dev', '--keep', '2', '--routes', routes])).toBe(
      'pruned 2 versions of dev: devbuild-1, devbuild-3; kept devbuild-2, devbuild-4, devbuild-5 (active devbuild-2); routing table generation 8\n',
    );
    expect(await dev(routes)).toMatchObject({ activeVersion: 'devbuild-2', history: ['devbuild-2', 'devbuild-4', 'devbuild-5'] });
    const before = await readFile(routes, 'utf8');
    expect(JSON.parse(await deployOk(['prune', '--site', 'dev', '--keep', '2', '--json', '--routes', routes]))).toEqual({
      site: 'dev',
      removed: [],
      kept: ['devbuild-2', 'devbuild-4', 'devbuild-5'],
      changed: false,
      dryRun: false,
      generation: 8,
    });
    expect(await deployOk(['prune', '--site', 'dev', '--keep', '0', '--dry-run', '--routes', routes])).toBe(
      'would prune 2 versions of dev: devbuild-4, devbuild-5; would keep devbuild-2 (active devbuild-2); dry run, nothing changed (routing table generation 8)\n',
    );
    expect(await readFile(routes, 'utf8')).toBe(before);
    expect(await deployOk(['prune', '--site', 'dev', '--keep', '9', '--routes', routes])).toBe(
      'nothing to prune: site dev has 3 versions (active devbuild-2); nothing changed (routing table generation 8)\n',
    );
    expect(await readFile(routes, 'utf8')).toBe(before);
    expect(JSON.parse(await deployOk(['prune', '--site', 'dev', '--keep', '0', '--json', '--routes', routes]))).toMatchObject({
      removed: ['devbuild-4', 'devbuild-5'],
      kept: ['devbuild-2'],
      changed: true,
    });
  });

  it.each([
    [['--site', 'dev'], 'Missing --keep: say how many of the newest versions to keep, such as --keep 5.'],
    [['--site', 'dev', '--keep=-1'], 'Invalid --keep "-1": give a whole number from 0 to 1000000.'],
    [['--site', 'dev', '--keep', 'all'], 'Invalid --keep "all"'],
    [['--site', 'dev', '--keep', '1.5'], 'Invalid --keep "1.5"'],
    [['--keep', '1'], 'Missing --site'],
  ])('exits 2 for %j without touching the routing table', async (args, message) => {
    const routes = await devWithVersions(2);
    const before = await readFile(routes, 'utf8');
    const result = await deploy(['prune', ...args, '--routes', routes]);
    expect(result.code).toBe(2);
    expect(result.stderr).toContain(`deploy: ${message}`);
    expect(await readFile(routes, 'utf8')).toBe(before);
  });
});
