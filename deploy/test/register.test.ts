import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { findSite, readRoutingTableFile } from '@proximation/shared';
import { deploy, deployOk, refusingOrigin, routesWithDev, tempDir, upstream, waitUntil } from './helpers.js';

async function dev(routes: string) {
  return findSite(await readRoutingTableFile(routes), 'dev');
}

/** A routing table whose site dev serves devbuild-1 on a healthy upstream. */
async function devServing(): Promise<{ routes: string; origin: string }> {
  const routes = await routesWithDev();
  const { origin } = await upstream(200);
  await deployOk(['register', '--no-wait', '--tag', 'devbuild-1', '--upstream', origin, '--routes', routes]);
  return { routes, origin };
}

describe('deploy register: health-gated activation', () => {
  it('activates a version once its upstreams answer the health check', async () => {
    const routes = await routesWithDev();
    const app = await upstream(200);
    const stdout = await deployOk(['register', '--no-wait', '--site', 'dev', '--version', 'devbuild-41', '--upstream', `${app.origin}/`, '--routes', routes]);
    // One generation for registering (staged), one for activating.
    expect(stdout).toBe('registered dev/devbuild-41 (1 upstream); active after passing the health check (was none); routing table generation 3\n');
    expect(app.requests).toEqual(['GET /']);
    expect(await dev(routes)).toMatchObject({ activeVersion: 'devbuild-41', versions: [{ name: 'devbuild-41', upstreams: [app.origin] }] });
  });

  it('finds the site by tag prefix, and keeps the previous version for rollback', async () => {
    const { routes, origin } = await devServing();
    const next = await upstream(200);
    const stdout = await deployOk(['register', '--no-wait', '--tag', 'devbuild-2', '--upstream', next.origin, '--upstream', origin, '--routes', routes]);
    expect(stdout).toBe('registered dev/devbuild-2 (2 upstreams); active after passing the health check (was devbuild-1); routing table generation 5\n');
    expect(await dev(routes)).toMatchObject({ activeVersion: 'devbuild-2', history: ['devbuild-1'] });
  });

  it('requests --health-path and accepts a redirect without following it', async () => {
    const routes = await routesWithDev();
    const app = await upstream(302);
    await deployOk(['register', '--no-wait', '--tag', 'devbuild-1', '--upstream', app.origin, '--health-path', '/healthz?deep=1', '--routes', routes]);
    expect(app.requests).toEqual(['GET /healthz?deep=1']);
    expect((await dev(routes)).activeVersion).toBe('devbuild-1');
  });

  it('retries until the upstream becomes healthy', async () => {
    const routes = await routesWithDev();
    let calls = 0;
    const app = await upstream(() => (++calls < 3 ? 503 : 204));
    await deployOk(['register', '--no-wait', '--tag', 'devbuild-1', '--upstream', app.origin, '--health-timeout', '5s', '--routes', routes]);
    expect(app.requests).toHaveLength(3);
    expect((await dev(routes)).activeVersion).toBe('devbuild-1');
  });

  it('leaves a version that answers 500 registered but not active, the old one serving, and exits 1 naming the upstream', async () => {
    const { routes } = await devServing();
    const broken = await upstream(500);
    const result = await deploy(['register', '--no-wait', '--tag', 'devbuild-2', '--upstream', broken.origin, '--health-timeout', '600ms', '--routes', routes]);
    expect(result).toMatchObject({ code: 1, stdout: '' });
    expect(result.stderr).toMatch(
      new RegExp(
        '^deploy: dev/devbuild-2 is registered but NOT active: the upstream did not pass the health check \\(GET / answering 2xx or 3xx within 600ms\\):\\n' +
          `  ${broken.origin}: GET / answered 500 Internal Server Error \\(\\d+ attempts\\)\\n` +
          'dev/devbuild-1 keeps serving\\. Make devbuild-2 answer GET / with a 2xx or 3xx status \\(or point --health-path at its health endpoint\\), ' +
          'then activate it: deploy activate --site dev --version devbuild-2\\n$',
      ),
    );
    expect(broken.requests.length).toBeGreaterThan(1);
    const site = await dev(routes);
    expect(site.activeVersion).toBe('devbuild-1');
    expect(site.versions.map((v) => v.name)).toEqual(['devbuild-1', 'devbuild-2']);
  });

  it('names an upstream that refuses connections, and only the failing one of several', async () => {
    const { routes } = await devServing();
    const healthy = await upstream(200);
    const refusing = await refusingOrigin();
    const result = await deploy(['register', '--no-wait', '--tag', 'devbuild-2', '--upstream', healthy.origin, '--upstream', refusing, '--health-timeout', '500ms', '--routes', routes]);
    expect(result.code).toBe(1);
    expect(result.stderr).toContain('dev/devbuild-2 is registered but NOT active: 1 of 2 upstreams did not pass the health check');
    expect(result.stderr).toContain(`  ${refusing}: GET / refused the connection (ECONNREFUSED)`);
    expect(result.stderr).not.toContain(`  ${healthy.origin}:`);
    expect((await dev(routes)).activeVersion).toBe('devbuild-1');
  });

  it('stages a version with --no-activate, without checking it', async () => {
    const { routes } = await devServing();
    const app = await upstream(200);
    const stdout = await deployOk(['register', '--no-wait', '--tag', 'devbuild-2', '--upstream', app.origin, '--no-activate', '--routes', routes]);
    expect(stdout).toBe('registered dev/devbuild-2 (1 upstream); not activated; devbuild-1 stays active; routing table generation 4\n');
    expect(app.requests).toEqual([]);
    expect((await dev(routes)).activeVersion).toBe('devbuild-1');
  });

  it('activates in one update without contacting the upstreams with --no-health-check', async () => {
    const { routes } = await devServing();
    const app = await upstream(500);
    const stdout = await deployOk(['register', '--no-wait', '--tag', 'devbuild-2', '--upstream', app.origin, '--no-health-check', '--routes', routes]);
    expect(stdout).toBe('registered dev/devbuild-2 (1 upstream); active without a health check (was devbuild-1); routing table generation 4\n');
    expect(app.requests).toEqual([]);
  });

  it('refuses a link-local upstream such as the ECS credentials endpoint unless --allow-restricted-upstreams, checking nothing', async () => {
    const { routes } = await devServing();
    const before = await readFile(routes, 'utf8');
    const refused = await deploy(['register', '--no-wait', '--tag', 'devbuild-2', '--upstream', 'http://169.254.170.2', '--routes', routes]);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toContain('http://169.254.170.2 is a link-local or cloud metadata address');
    expect(refused.stderr).toContain('--allow-restricted-upstreams');
    expect(await readFile(routes, 'utf8')).toBe(before);
    await deployOk(['register', '--no-wait', '--tag', 'devbuild-2', '--upstream', 'http://169.254.170.2', '--allow-restricted-upstreams', '--no-activate', '--routes', routes]);
    expect((await dev(routes)).versions[1]).toMatchObject({ name: 'devbuild-2', upstreams: ['http://169.254.170.2'], allowRestrictedUpstreams: true });
  });

  it('changes nothing when the same version is registered again, and re-activates an older one after checking it', async () => {
    const { routes, origin } = await devServing();
    await deployOk(['register', '--no-wait', '--tag', 'devbuild-2', '--upstream', origin, '--routes', routes]);
    const before = await readFile(routes, 'utf8');
    expect(await deployOk(['register', '--no-wait', '--tag', 'devbuild-2', '--upstream', origin, '--routes', routes])).toBe(
      'dev/devbuild-2 is already registered with these upstreams; already active; nothing changed (routing table generation 5)\n',
    );
    expect(await readFile(routes, 'utf8')).toBe(before);
    expect(await deployOk(['register', '--no-wait', '--tag', 'devbuild-1', '--upstream', origin, '--routes', routes])).toBe(
      'dev/devbuild-1 is already registered with these upstreams; active after passing the health check (was devbuild-2); routing table generation 6\n',
    );
  });

  it('refuses other upstreams for an existing version unless --replace is given', async () => {
    const { routes } = await devServing();
    const other = await upstream(200);
    const before = await readFile(routes, 'utf8');
    const refused = await deploy(['register', '--no-wait', '--tag', 'devbuild-1', '--upstream', other.origin, '--routes', routes]);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toContain('deploy: Version dev/devbuild-1 is already registered with upstreams http://127.0.0.1:');
    expect(refused.stderr).toContain('(deploy register --join), or replace its upstreams explicitly (deploy register --replace)');
    expect(await readFile(routes, 'utf8')).toBe(before);
    // devbuild-1 is active: its new upstream is checked before it is written.
    expect(await deployOk(['register', '--no-wait', '--tag', 'devbuild-1', '--upstream', other.origin, '--replace', '--routes', routes])).toBe(
      'replaced the upstreams of dev/devbuild-1 (now 1 upstream); already active; routing table generation 4\n',
    );
    expect(other.requests).toEqual(['GET /']);
    expect((await dev(routes)).versions[0]!.upstreams).toEqual([other.origin]);
  });

  it('adds upstreams to the active version with --join only after they pass the check', async () => {
    const { routes, origin } = await devServing();
    const second = await upstream(200);
    expect(await deployOk(['register', '--no-wait', '--tag', 'devbuild-1', '--join', '--upstream', second.origin, '--routes', routes])).toBe(
      'added to the upstreams of dev/devbuild-1 (now 2 upstreams); already active; routing table generation 4\n',
    );
    expect(second.requests).toEqual(['GET /']);
    const broken = await upstream(503);
    const before = await readFile(routes, 'utf8');
    const result = await deploy(['register', '--no-wait', '--tag', 'devbuild-1', '--join', '--upstream', broken.origin, '--health-timeout', '300ms', '--routes', routes]);
    expect(result.code).toBe(1);
    expect(result.stderr).toContain('deploy: Did not add upstreams to dev/devbuild-1, the active version: the upstream did not pass the health check');
    expect(result.stderr).toContain(`  ${broken.origin}: GET / answered 503 Service Unavailable`);
    expect(result.stderr).toContain('Nothing changed: it keeps serving on the upstreams it had.');
    expect(await readFile(routes, 'utf8')).toBe(before);
    expect((await dev(routes)).versions[0]!.upstreams).toEqual([origin, second.origin]);
  });

  it('reports as JSON', async () => {
    const { routes } = await devServing();
    const app = await upstream(200);
    const result = JSON.parse(await deployOk(['register', '--no-wait', '--tag', 'devbuild-2', '--upstream', app.origin, '--json', '--routes', routes]));
    expect(result).toEqual({
      site: 'dev',
      version: 'devbuild-2',
      upstreams: [app.origin],
      registration: 'registered',
      activation: 'activated',
      activeBefore: 'devbuild-1',
      activeVersion: 'devbuild-2',
      healthChecked: [app.origin],
      ecs: null,
      lease: null,
      generation: 5,
      convergence: null,
    });
    const staged = JSON.parse(await deployOk(['register', '--no-wait', '--tag', 'devbuild-3', '--upstream', app.origin, '--no-activate', '--no-health-check', '--json', '--routes', routes]));
    expect(staged).toMatchObject({ registration: 'registered', activation: 'not-activated', activeVersion: 'devbuild-2', healthChecked: null, generation: 6 });
  });
});

describe('deploy register: concurrent deploys', () => {
  it('does not activate a version over a newer one that another deploy activated during its check', async () => {
    const { routes } = await devServing();
    let ready = false;
    const slow = await upstream(() => (ready ? 200 : 503));
    const fast = await upstream(200);
    const first = deploy(['register', '--no-wait', '--tag', 'devbuild-2', '--upstream', slow.origin, '--health-timeout', '10s', '--routes', routes]);
    await waitUntil(() => slow.requests.length > 0, 5_000, 'the first deploy to check its upstream');
    expect(await deployOk(['register', '--no-wait', '--tag', 'devbuild-3', '--upstream', fast.origin, '--routes', routes])).toContain(
      'registered dev/devbuild-3 (1 upstream); active after passing the health check (was devbuild-1)',
    );
    ready = true;
    const result = await first;
    expect(result).toMatchObject({ code: 1, stdout: '' });
    expect(result.stderr).toContain(
      'deploy: Did not activate dev/devbuild-2: dev/devbuild-3, registered after it, became active meanwhile (another deploy activated it). ' +
        'devbuild-2 stays registered; to make it active anyway, activate it explicitly (deploy activate --site dev --version devbuild-2).',
    );
    const site = await dev(routes);
    expect(site.activeVersion).toBe('devbuild-3');
    expect(site.versions.map((v) => v.name)).toEqual(['devbuild-1', 'devbuild-2', 'devbuild-3']);
  });

  it('checks upstreams another deploy joined to the version while it was being checked', async () => {
    const { routes } = await devServing();
    let ready = false;
    const a = await upstream(() => (ready ? 200 : 503));
    const b = await upstream(200);
    const first = deploy(['register', '--no-wait', '--tag', 'devbuild-2', '--upstream', a.origin, '--health-timeout', '10s', '--routes', routes]);
    await waitUntil(() => a.requests.length > 0, 5_000, 'the first deploy to check its upstream');
    await deployOk(['register', '--no-wait', '--tag', 'devbuild-2', '--join', '--no-activate', '--upstream', b.origin, '--routes', routes]);
    expect(b.requests).toEqual([]);
    ready = true;
    const result = await first;
    expect(result.stderr).toBe('');
    expect(result.stdout).toBe('registered dev/devbuild-2 (2 upstreams); active after passing the health check (was devbuild-1); routing table generation 6\n');
    expect(b.requests).toEqual(['GET /']);
    expect(await dev(routes)).toMatchObject({ activeVersion: 'devbuild-2', versions: [{}, { upstreams: [a.origin, b.origin] }] });
  });
});

describe('deploy register: bad input', () => {
  it.each([
    [['--tag', 'devbuild-1', '--site', 'dev', '--upstream', 'http://a'], 'Give either --tag, or --site and --version, not both.'],
    [['--site', 'dev', '--upstream', 'http://a'], 'Say which version to register: --site <site> --version <version>, or --tag <tag>.'],
    [['--tag', 'devbuild-1'], 'Missing --upstream'],
    [['devbuild-1', '--upstream', 'http://a'], 'Unexpected argument "devbuild-1"; to name the tag, write --tag devbuild-1.'],
    [['--tag', 'devbuild-1', '--upstream', '10.0.0.1:8080'], 'Invalid upstream "10.0.0.1:8080" for --upstream: it needs a scheme'],
    [['--tag', 'devbuild-1', '--upstream', 'ftp://x'], 'Invalid upstream "ftp://x" for --upstream: the scheme must be http, https, h2c or h2, not ftp'],
    [['--tag', 'devbuild-1', '--upstream', 'http://10.0.0.1:80800'], 'Invalid upstream "http://10.0.0.1:80800" for --upstream: its port 80800 is out of range (1 to 65535)'],
    [['--site', 'dev', '--version', '42', '--upstream', 'http://a'], 'Version "42" does not start with site dev\'s tag prefix "devbuild-": name it devbuild-...'],
    [['--tag', 'devbuild-1', '--upstream', 'http://a', '--activate'], 'Unknown option --activate.'],
    [['--tag', 'devbuild-1', '--upstream', 'http://a', '--replace', '--join'], 'Give either --replace or --join, not both.'],
    [['--tag', 'devbuild-1', '--upstream', 'http://a', '--health-timeout', '30'], 'Invalid duration "30" for --health-timeout: add a unit, for example "30ms" or "30s".'],
    [['--tag', 'devbuild-1', '--upstream', 'http://a', '--health-timeout', 'soon'], 'Invalid duration "soon" for --health-timeout'],
    [['--tag', 'devbuild-1', '--upstream', 'http://a', '--health-path', 'healthz'], 'Invalid --health-path "healthz": give a path starting with a single "/"'],
    [['--tag', 'devbuild-1', '--upstream', 'http://a', '--health-path', '//evil.example/'], 'Invalid --health-path "//evil.example/"'],
    [['--tag', 'devbuild-1', '--upstream', 'http://a', '--no-health-check', '--health-path', '/h'], '--no-health-check contradicts --health-path; give one or the other.'],
    [['--tag', 'devbuild-1', '--upstream', 'http://a', '--container-port', '80'], '--container-port only applies with --upstream-from-ecs.'],
    [['--tag', 'devbuild-1', '--upstream-from-ecs', '--container-port', '0'], 'Invalid --container-port "0": give a whole number from 1 to 65535.'],
  ])('exits 2 for %j without touching the routing table', async (args, message) => {
    const routes = await routesWithDev();
    const before = await readFile(routes, 'utf8');
    const result = await deploy(['register', '--no-wait', ...args, '--routes', routes]);
    expect(result.code).toBe(2);
    expect(result.stderr).toContain(`deploy: ${message}`);
    expect(result.stderr).toContain('Run "deploy register --help" for usage.');
    expect(await readFile(routes, 'utf8')).toBe(before);
  });

  it.each([
    [['--site', 'stage', '--version', 'v1', '--upstream', 'http://a'], 'Unknown site "stage": known sites: dev.'],
    [['--tag', 'nightly-1', '--upstream', 'http://a'], 'No site\'s tag prefix matches tag "nightly-1" (known tag prefixes: devbuild- (site dev))'],
    [['--site', 'dev', '--version', 'v 1', '--upstream', 'http://a'], 'Invalid version name "v 1"'],
  ])('exits 1 for %j and leaves the routing table as it was', async (args, message) => {
    const routes = await routesWithDev();
    const before = await readFile(routes, 'utf8');
    const result = await deploy(['register', '--no-wait', ...args, '--routes', routes]);
    expect(result).toMatchObject({ code: 1, stdout: '' });
    expect(result.stderr).toContain(`deploy: ${message}`);
    expect(await readFile(routes, 'utf8')).toBe(before);
  });

  it('registers a version outside the site\'s tag prefix with --any-version-name, and one registered already without it', async () => {
    const routes = await routesWithDev();
    await deployOk(['register', '--no-wait', '--site', 'dev', '--version', 'hotfix-1', '--upstream', 'http://127.0.0.1:1', '--no-health-check', '--any-version-name', '--routes', routes]);
    await deployOk(['register', '--no-wait', '--site', 'dev', '--version', 'hotfix-1', '--upstream', 'http://127.0.0.1:2', '--join', '--no-health-check', '--routes', routes]);
    expect(await dev(routes)).toMatchObject({ activeVersion: 'hotfix-1', versions: [{ upstreams: ['http://127.0.0.1:1', 'http://127.0.0.1:2'] }] });
  });

  it('prefers --routes over PROXIMATION_ROUTES', async () => {
    const routes = await routesWithDev();
    const elsewhere = join(await tempDir(), 'routes.json');
    await deployOk(['register', '--no-wait', '--tag', 'devbuild-1', '--upstream', 'http://127.0.0.1:1', '--no-health-check', '--routes', routes], { PROXIMATION_ROUTES: elsewhere });
    expect((await dev(routes)).activeVersion).toBe('devbuild-1');
  });

  it('exits 1 with the validation error when the routing table file is invalid, leaving it as it was', async () => {
    const routes = join(await tempDir(), 'routes.json');
    const broken = '{"schemaVersion": 1, "generation": 1, "sites": [{"name": "dev"}]}';
    await writeFile(routes, broken);
    const result = await deploy(['register', '--no-wait', '--tag', 'devbuild-1', '--upstream', 'http://a', '--routes', routes]);
    expect(result.code).toBe(1);
    expect(result.stderr).toContain(`deploy: Invalid routing table ${routes}: sites[0].hosts: required field is missing`);
    expect(await readFile(routes, 'utf8')).toBe(broken);
  });
});

describe('deploy register: the proxy\'s own ports', () => {
  it('refuses an upstream on a default proximation port of the proxy\'s host, before touching the table', async () => {
    const { routes } = await devServing();
    const before = await readFile(routes, 'utf8');
    for (const own of ['http://127.0.0.1:9180', 'http://localhost', 'https://[::1]']) {
      const refused = await deploy(['register', '--no-wait', '--tag', 'devbuild-2', '--upstream', own, '--allow-restricted-upstreams', '--routes', routes]);
      expect(refused.code, own).toBe(1);
      expect(refused.stderr).toContain("own listeners");
    }
    expect(await readFile(routes, 'utf8')).toBe(before);
  });
});
