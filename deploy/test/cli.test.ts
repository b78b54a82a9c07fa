import { readFile, readdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { findSite, readRoutingTableFile } from '@proximation/shared';
import { deploy, deployOk, routesWithDev, tempDir } from './helpers.js';

const version = JSON.parse(await readFile(new URL('../package.json', import.meta.url), 'utf8')).version as string;

/** Every command, with arguments that are valid for it (the routing table aside). */
const VALID_ARGS: Record<string, string[]> = {
  'site add': ['dev', '--host', 'a.com'],
  'site remove': ['dev'],
  'site list': [],
  'site hsts': ['dev', '--max-age', '1y'],
  register: ['--site', 'dev', '--version', 'v1', '--upstream', 'http://127.0.0.1:1', '--no-health-check'],
  activate: ['--site', 'dev', '--version', 'v1'],
  rollback: ['--site', 'dev'],
  versions: ['--site', 'dev'],
  remove: ['--site', 'dev', '--version', 'v1'],
  prune: ['--site', 'dev', '--keep', '1'],
};
const COMMANDS = Object.keys(VALID_ARGS);
const argv = (command: string) => [...command.split(' '), ...VALID_ARGS[command]!];

/** Runs `args` on a table holding site dev; expects exit `code` with `message` on stderr and the table untouched. */
async function expectRefusal(args: string[], code: 1 | 2, message: string): Promise<string> {
  const routes = await routesWithDev();
  const before = await readFile(routes, 'utf8');
  const result = await deploy([...args, '--routes', routes]);
  expect(result).toMatchObject({ code, stdout: '' });
  expect(result.stderr).toContain(`deploy: ${message}`);
  expect(await readFile(routes, 'utf8')).toBe(before);
  return result.stderr;
}

describe('deploy (global)', () => {
  it('prints help listing every command, and the version', async () => {
    const help = await deploy(['--help']);
    expect(help).toMatchObject({ code: 0, stderr: '' });
    expect(help.stdout).toMatch(/^Usage: deploy <command>/);
    for (const command of COMMANDS) expect(help.stdout).toMatch(new RegExp(`\\n  ${command}\\b`));
    expect(help.stdout).toContain('Exit status: 0 done, 1 failed (the message says why and what to do), 2 usage error.');
    expect((await deploy(['-h'])).stdout).toBe(help.stdout);
    expect(await deploy(['--version'])).toEqual({ code: 0, stdout: `deploy ${version}\n`, stderr: '' });
    expect(await deploy(['help'])).toEqual(help);
    expect((await deploy(['help', 'site', 'add'])).stdout).toBe((await deploy(['site', 'add', '--help'])).stdout);
    expect((await deploy(['help', 'site'])).stdout).toContain('site remove <site>');
    expect((await deploy(['site', '--help'])).stdout).toContain('site remove <site>');
  });

  it.each(COMMANDS)('shows the help of %s', async (command) => {
    const result = await deploy([...command.split(' '), '--help']);
    expect(result).toMatchObject({ code: 0, stderr: '' });
    expect(result.stdout).toMatch(new RegExp(`^Usage: deploy ${command}`));
    expect(result.stdout).toContain('--routes FILE');
  });

  it.each([
    [[], 'No command given.\nRun "deploy --help" for usage.'],
    [['deploy'], 'Unknown command "deploy".'],
    [['--routes', 'x', 'register'], 'Unknown command "--routes". The command comes first, then its options.'],
    [['site'], '"deploy site" needs a subcommand: site add, site remove, site list, site hsts, site preview.'],
    [['site', 'rename', 'dev'], 'Unknown command "site rename"; try site add, site remove, site list, site hsts, site preview.'],
  ])('exits 2 for %j', async (args, message) => {
    const result = await deploy(args);
    expect(result.code).toBe(2);
    expect(result.stdout).toBe('');
    expect(result.stderr).toContain(`deploy: ${message}`);
  });

  it.each(COMMANDS)('%s exits 2 when no routing table is given', async (command) => {
    const result = await deploy(argv(command), { PROXIMATION_ROUTES: '' });
    expect(result.code).toBe(2);
    expect(result.stderr).toContain('No routing table given: pass --routes FILE or set PROXIMATION_ROUTES');
  });

  it.each(COMMANDS)('%s exits 1 on a routing table written by a newer proximation, leaving it unchanged', async (command) => {
    const routes = join(await tempDir(), 'routes.json');
    const newer = '{"schemaVersion": 2, "generation": 3, "sites": [], "shards": {}}\n';
    await writeFile(routes, newer);
    const result = await deploy([...argv(command), '--routes', routes]);
    expect(result).toMatchObject({ code: 1, stdout: '' });
    expect(result.stderr).toContain(`deploy: ${routes} has schemaVersion 2: it was written by a newer proximation; upgrade proximation/deploy`);
    expect(await readFile(routes, 'utf8')).toBe(newer);
  });
});

describe('deploy site add', () => {
  it('adds a site with normalised hosts and the default tag prefix', async () => {
    const routes = join(await tempDir(), 'routes.json');
    const result = await deploy(['site', 'add', 'dev', '--host', 'Dev.Example.com', '--host', 'bücher.example', '--routes', routes]);
    expect(result).toEqual({
      code: 0,
      stdout: `created a new routing table at ${routes}; added site dev (hosts dev.example.com, xn--bcher-kva.example; tag prefix devbuild-); routing table generation 1\n`,
      stderr: '',
    });
    expect(findSite(await readRoutingTableFile(routes), 'dev').hosts).toEqual(['dev.example.com', 'xn--bcher-kva.example']);
  });

  it('takes the routing table from PROXIMATION_ROUTES, and a --tag-prefix', async () => {
    const routes = join(await tempDir(), 'routes.json');
    const stdout = await deployOk(['site', 'add', 'blog', '--host', 'blog.example.com', '--tag-prefix', 'blog-'], { PROXIMATION_ROUTES: routes });
    expect(stdout).toBe(`created a new routing table at ${routes}; added site blog (hosts blog.example.com; tag prefix blog-); routing table generation 1\n`);
    // The file exists now: the next site is added to it, with no word about creating.
    expect(await deployOk(['site', 'add', 'shop', '--host', 'shop.example.com'], { PROXIMATION_ROUTES: routes })).toMatch(/^added site shop /);
    expect(findSite(await readRoutingTableFile(routes), 'blog').tagPrefix).toBe('blog-');
  });

  it('succeeds without changing anything when the site exists as given', async () => {
    const routes = await routesWithDev();
    const before = await readFile(routes, 'utf8');
    expect(await deployOk(['site', 'add', 'dev', '--host', 'dev.example.com', '--routes', routes])).toBe(
      'site dev already exists with these hosts and tag prefix devbuild-; nothing changed (routing table generation 1)\n',
    );
    expect(await readFile(routes, 'utf8')).toBe(before);
  });

  it('reports as JSON', async () => {
    const routes = join(await tempDir(), 'routes.json');
    const stdout = await deployOk(['site', 'add', 'shop', '--host', 'shop.example.com', '--json', '--routes', routes]);
    expect(JSON.parse(stdout)).toEqual({
      site: { name: 'shop', hosts: ['shop.example.com'], tagPrefix: null, hsts: null, challenge: null, preview: null, activeVersion: null, versionCount: 0 },
      changed: true,
      created: true,
      generation: 1,
    });
  });

  it.each([
    [['site', 'add', '--host', 'a.com'], 'Missing the site name'],
    [['site', 'add', 'dev'], 'Missing --host: give each hostname of site "dev" with its own --host'],
    [['site', 'add', 'dev', 'dev.example.com'], 'Unexpected argument "dev.example.com"'],
    [['site', 'add', 'dev', '--hosts', 'a.com'], 'Unknown option --hosts.'],
    [['site', 'add', 'dev', '--host'], '--host needs a value, but is followed by --routes; for a value starting with "-", write --host=--routes.'],
    [['site', 'add', 'dev', '--host', '--tag-prefix', 'x-'], '--host needs a value, but is followed by --tag-prefix; for a value starting with "-", write --host=--tag-prefix.'],
    [['site', 'add', 'dev', '--host=a.com', '--json=yes'], '--json takes no value; write it alone (got "--json=yes").'],
    [['site', 'add', 'dev', '--hots', 'a.com'], 'Unknown option --hots. Did you mean --host?'],
    [['site', 'add', 'shop', '--host', 'shop.example.com:443'], 'Invalid hostname "shop.example.com:443" in --host: it contains ":"'],
    // An address is never a site host: no certificate would ever be ordered for it.
    [['site', 'add', 'ip', '--host', '127.0.0.1'], 'Invalid hostname "127.0.0.1" in --host: it is an IP address, and a site is reached by a DNS name'],
    [['site', 'add', 'ip', '--host', '0x7f.1'], 'Invalid hostname "0x7f.1" in --host: it is an IP address'],
    [['site', 'add', 'ip', '--host', '[::1]'], 'Invalid hostname "[::1]" in --host: it contains brackets'],
  ])('exits 2 for %j without touching the routing table', async (args, message) => {
    expect(await expectRefusal(args, 2, message)).toContain('Run "deploy site add --help" for usage.');
  });

  it.each([
    [['site', 'add', 'Shop', '--host', 'shop.example.com'], 'Invalid site name "Shop"'],
    [['site', 'add', 'dev', '--host', 'other.example.com'], 'Site "dev" already exists with hosts dev.example.com'],
    [['site', 'add', 'shop', '--host', 'dev.example.com'], 'Host "dev.example.com" already belongs to site "dev"'],
    [['site', 'add', 'shop', '--host', 'shop.example.com', '--tag-prefix', 'devbuild-'], 'Tag prefix "devbuild-" is already used by site "dev"'],
  ])('exits 1 for %j and leaves the routing table as it was', async (args, message) => {
    await expectRefusal(args, 1, message);
  });
});

describe('deploy site remove', () => {
  it('removes a site with its versions', async () => {
    const routes = await routesWithDev();
    await deployOk(['site', 'add', 'shop', '--host', 'shop.example.com', '--routes', routes]);
    await deployOk(['register', '--tag', 'devbuild-1', '--upstream', 'http://127.0.0.1:1', '--no-health-check', '--routes', routes]);
    expect(await deployOk(['site', 'remove', 'dev', '--routes', routes])).toBe(
      'removed site dev (hosts dev.example.com; tag prefix devbuild-; active devbuild-1 of 1 version); routing table generation 4\n',
    );
    const table = await readRoutingTableFile(routes);
    expect(table.sites.map((s) => s.name)).toEqual(['shop']);
    expect(JSON.parse(await deployOk(['site', 'remove', 'shop', '--json', '--routes', routes]))).toEqual({
      removed: { name: 'shop', hosts: ['shop.example.com'], tagPrefix: null, hsts: null, challenge: null, preview: null, activeVersion: null, versionCount: 0 },
      dryRun: false,
      generation: 5,
    });
  });

  it('says what it would remove with --dry-run, and changes nothing', async () => {
    const routes = await routesWithDev();
    const before = await readFile(routes, 'utf8');
    expect(await deployOk(['site', 'remove', 'dev', '--dry-run', '--routes', routes])).toBe(
      'would remove site dev (hosts dev.example.com; tag prefix devbuild-; no active version (0 versions)); dry run, nothing changed (routing table generation 1)\n',
    );
    expect(JSON.parse(await deployOk(['site', 'remove', 'dev', '--dry-run', '--json', '--routes', routes]))).toMatchObject({ dryRun: true, generation: 1 });
    expect(await readFile(routes, 'utf8')).toBe(before);
  });

  it('exits 1 for an unknown site and 2 without a site name, leaving the table as it was', async () => {
    const routes = await routesWithDev();
    const before = await readFile(routes, 'utf8');
    const unknown = await deploy(['site', 'remove', 'stage', '--routes', routes]);
    expect(unknown).toMatchObject({ code: 1, stdout: '' });
    expect(unknown.stderr).toContain('deploy: Unknown site "stage": known sites: dev.');
    const missing = await deploy(['site', 'remove', '--routes', routes]);
    expect(missing.code).toBe(2);
    expect(missing.stderr).toContain('Missing the site name: deploy site remove <site>.');
    expect((await deploy(['site', 'remove', 'dev', 'shop', '--routes', routes])).code).toBe(2);
    expect(await readFile(routes, 'utf8')).toBe(before);
  });
});

describe('deploy site list', () => {
  it('lists the sites as text and as JSON', async () => {
    const routes = await routesWithDev();
    await deployOk(['site', 'add', 'blog', '--host', 'blog.example.com', '--host', 'www.blog.example.com', '--routes', routes]);
    await deployOk(['register', '--tag', 'devbuild-1', '--upstream', 'http://127.0.0.1:1', '--no-health-check', '--routes', routes]);
    expect(await deployOk(['site', 'list', '--routes', routes])).toBe(
      'dev   hosts dev.example.com; tag prefix devbuild-; active devbuild-1 of 1 version\n' +
        'blog  hosts blog.example.com, www.blog.example.com; no tag prefix; no active version (0 versions)\n',
    );
    expect(JSON.parse(await deployOk(['site', 'list', '--json', '--routes', routes]))).toEqual({
      generation: 3,
      sites: [
        { name: 'dev', hosts: ['dev.example.com'], tagPrefix: 'devbuild-', hsts: null, challenge: null, preview: null, activeVersion: 'devbuild-1', versionCount: 1 },
        { name: 'blog', hosts: ['blog.example.com', 'www.blog.example.com'], tagPrefix: null, hsts: null, challenge: null, preview: null, activeVersion: null, versionCount: 0 },
      ],
    });
  });

  it('says how to add a site when there is none', async () => {
    const routes = join(await tempDir(), 'routes.json');
    await writeFile(routes, '{"schemaVersion": 1, "generation": 0, "sites": []}\n');
    expect(await deployOk(['site', 'list', '--routes', routes])).toBe('no sites yet; add one with: deploy site add <site> --host <name>\n');
    expect(JSON.parse(await deployOk(['site', 'list', '--json', '--routes', routes]))).toEqual({ generation: 0, sites: [] });
    expect((await deploy(['site', 'list', 'dev', '--routes', routes])).code).toBe(2);
  });

  it.each(COMMANDS.filter((command) => command !== 'site add'))('%s fails on a path with no routing table, naming it and its flag or variable, and creates nothing', async (command) => {
    const dir = await tempDir();
    const routes = join(dir, 'mistyped', 'routes.json');
    for (const [args, env, origin] of [
      [['--routes', routes], {}, 'from --routes'],
      [[], { PROXIMATION_ROUTES: routes }, 'from PROXIMATION_ROUTES'],
    ] as const) {
      const result = await deploy([...argv(command), ...args, ...(['site remove', 'prune'].includes(command) ? ['--yes'] : [])], env);
      expect(result).toMatchObject({ code: 1, stdout: '' });
      expect(result.stderr).toContain(`deploy: No routing table at ${routes} (${origin}): check the path`);
      expect(result.stderr).toContain('only "deploy site add" creates a new one');
    }
    expect(await readdir(dir)).toEqual([]);
  });
});

describe('deploy site hsts', () => {
  it('sets, changes and clears a site\'s HSTS, changing nothing when it is already so', async () => {
    const routes = await routesWithDev();
    expect(await deployOk(['site', 'hsts', 'dev', '--max-age', '1y', '--include-subdomains', '--routes', routes])).toBe(
      'site dev now sends Strict-Transport-Security: max-age=31536000; includeSubDomains; routing table generation 2\n',
    );
    expect(findSite(await readRoutingTableFile(routes), 'dev').hsts).toEqual({ maxAge: 31_536_000, includeSubDomains: true });
    const before = await readFile(routes, 'utf8');
    expect(await deployOk(['site', 'hsts', 'dev', '--max-age', '365d', '--include-subdomains', '--routes', routes])).toBe(
      'site dev already sends Strict-Transport-Security: max-age=31536000; includeSubDomains; nothing changed (routing table generation 2)\n',
    );
    expect(await readFile(routes, 'utf8')).toBe(before);
    expect(await deployOk(['site', 'list', '--routes', routes])).toBe(
      'dev  hosts dev.example.com; tag prefix devbuild-; HSTS "max-age=31536000; includeSubDomains"; no active version (0 versions)\n',
    );
    expect(JSON.parse(await deployOk(['site', 'hsts', 'dev', '--max-age', '2y', '--include-subdomains', '--preload', '--json', '--routes', routes]))).toEqual({
      site: { name: 'dev', hosts: ['dev.example.com'], tagPrefix: 'devbuild-', hsts: { maxAge: 63_072_000, includeSubDomains: true, preload: true }, challenge: null, preview: null, activeVersion: null, versionCount: 0 },
      changed: true,
      generation: 3,
    });
    expect(await deployOk(['site', 'hsts', 'dev', '--max-age', '0s', '--routes', routes])).toBe(
      'site dev now sends Strict-Transport-Security: max-age=0; routing table generation 4\n',
    );
    expect(await deployOk(['site', 'hsts', 'dev', '--max-age', 'off', '--routes', routes])).toBe(
      'site dev now sends no Strict-Transport-Security header; routing table generation 5\n',
    );
    expect(await readFile(routes, 'utf8')).not.toContain('hsts');
    expect(await deployOk(['site', 'hsts', 'dev', '--max-age', 'off', '--routes', routes])).toBe(
      'site dev already sends no Strict-Transport-Security header; nothing changed (routing table generation 5)\n',
    );
  });

  it('is set by site add, which then passes again with the same or no HSTS flags and refuses other ones', async () => {
    const routes = join(await tempDir(), 'routes.json');
    const add = ['site', 'add', 'shop', '--host', 'shop.example.com', '--routes', routes];
    expect(await deployOk([...add, '--hsts-max-age', '1w'])).toBe(
      `created a new routing table at ${routes}; added site shop (hosts shop.example.com; no tag prefix; HSTS "max-age=604800"); routing table generation 1\n`,
    );
    expect(findSite(await readRoutingTableFile(routes), 'shop').hsts).toEqual({ maxAge: 604_800 });
    await deployOk([...add, '--hsts-max-age', '7d']);
    await deployOk(add);
    const other = await deploy([...add, '--hsts-max-age', '1y']);
    expect(other).toMatchObject({ code: 1, stdout: '' });
    expect(other.stderr).toContain('deploy: Site "shop" already exists with HSTS "max-age=604800". Change its HSTS setting with: deploy site hsts shop --max-age <duration>|off.');
    expect((await readRoutingTableFile(routes)).generation).toBe(1);
  });

  it.each([
    [['site', 'hsts', 'dev'], 'site hsts', 'Missing --max-age: give a duration such as --max-age 1y, or --max-age off to stop sending the header.'],
    [['site', 'hsts', 'dev', '--max-age', '31536000'], 'site hsts', 'Invalid duration "31536000" for --max-age: add a unit'],
    [['site', 'hsts', 'dev', '--max-age', '1500ms'], 'site hsts', 'Invalid --max-age "1500ms": HSTS max-age counts whole seconds; give such as 1y, 180d, 1h or 0s.'],
    [['site', 'hsts', 'dev', '--max-age', 'off', '--preload'], 'site hsts', '--max-age off sends no header, so --preload has nothing to apply to; leave it out.'],
    [['site', 'hsts', '--max-age', '1y'], 'site hsts', 'Missing the site name: deploy site hsts <site> --max-age <duration>|off.'],
    [['site', 'add', 'shop', '--host', 'shop.example.com', '--hsts-include-subdomains'], 'site add', '--hsts-include-subdomains needs --hsts-max-age, such as --hsts-max-age 1y.'],
    [['site', 'add', 'shop', '--host', 'shop.example.com', '--hsts-max-age', '1 year'], 'site add', 'Invalid duration "1 year" for --hsts-max-age'],
    // The policy's rules, worded with the flags as typed (not the routing table's includeSubDomains).
    [['site', 'hsts', 'dev', '--max-age', '1y', '--preload'], 'site hsts', '--preload requires --include-subdomains (hstspreload.org'],
    [['site', 'hsts', 'dev', '--max-age', '180d', '--include-subdomains', '--preload'], 'site hsts', '--preload requires a --max-age of at least 1y (one year, as hstspreload.org requires); raise --max-age or drop --preload.'],
    [['site', 'add', 'shop', '--host', 'shop.example.com', '--hsts-max-age', '1d', '--hsts-preload'], 'site add', '--hsts-preload requires --hsts-include-subdomains'],
  ])('exits 2 for %j without touching the routing table', async (args, command, message) => {
    expect(await expectRefusal(args, 2, message)).toContain(`Run "deploy ${command} --help" for usage.`);
  });

  it.each([
    [['site', 'hsts', 'stage', '--max-age', '1y'], 'Unknown site "stage": known sites: dev.'],
  ])('exits 1 for %j with the routing table\'s error, leaving it as it was', async (args, message) => {
    await expectRefusal(args, 1, message);
  });
});
