import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { findSite, readRoutingTableFile } from '@proximation/shared';
import { main } from '../src/cli.js';
import { tempDir } from '../../shared/test/helpers.js';

class Capture extends Writable {
  text = '';
  override _write(chunk: Buffer, _encoding: BufferEncoding, done: () => void): void {
    this.text += chunk.toString();
    done();
  }
}

async function deploy(argv: string[], env: NodeJS.ProcessEnv = {}): Promise<{ code: number; stdout: string; stderr: string }> {
  const stdout = new Capture();
  const stderr = new Capture();
  const code = await main(argv, env, { stdout, stderr });
  return { code, stdout: stdout.text, stderr: stderr.text };
}

async function routesWithDev(): Promise<string> {
  const routes = join(await tempDir(), 'proximation', 'routes.json');
  expect((await deploy(['site', 'add', 'dev', '--host', 'dev.example.com', '--routes', routes])).code).toBe(0);
  return routes;
}

const version = JSON.parse(await readFile(new URL('../package.json', import.meta.url), 'utf8')).version as string;

describe('deploy (global)', () => {
  it('prints help and the version', async () => {
    const help = await deploy(['--help']);
    expect(help).toMatchObject({ code: 0, stderr: '' });
    expect(help.stdout).toMatch(/^Usage: deploy <command>/);
    expect(help.stdout).toContain('site add <site> --host <name>...');
    expect(help.stdout).toContain('register (--site <site> --version <version> | --tag <tag>) --upstream <url>...');
    expect((await deploy(['-h'])).stdout).toBe(help.stdout);
    expect(await deploy(['--version'])).toEqual({ code: 0, stdout: `${version}\n`, stderr: '' });
    expect((await deploy(['site', '--help'])).stdout).toContain('site add <site>');
  });

  it.each([
    [[], 'No command given.\nRun "deploy --help" for usage.'],
    [['deploy'], 'Unknown command "deploy".'],
    [['--routes', 'x', 'register'], 'Unknown command "--routes". The command comes first, then its options.'],
    [['site'], '"deploy site" needs a subcommand: site add.'],
    [['site', 'remove', 'dev'], 'Unknown command "site remove"; try site add.'],
  ])('exits 2 for %j', async (argv, message) => {
    const result = await deploy(argv);
    expect(result.code).toBe(2);
    expect(result.stdout).toBe('');
    expect(result.stderr).toContain(`deploy: ${message}`);
  });
});

describe('deploy site add', () => {
  it('adds a site with normalised hosts and the default tag prefix', async () => {
    const routes = join(await tempDir(), 'routes.json');
    const result = await deploy(['site', 'add', 'dev', '--host', 'Dev.Example.com', '--host', 'bücher.example', '--routes', routes]);
    expect(result).toEqual({
      code: 0,
      stdout: 'added site dev (hosts dev.example.com, xn--bcher-kva.example; tag prefix devbuild-); routing table generation 1\n',
      stderr: '',
    });
    expect(findSite(await readRoutingTableFile(routes), 'dev').hosts).toEqual(['dev.example.com', 'xn--bcher-kva.example']);
  });

  it('takes the routing table from PROXIMATION_ROUTES, and a --tag-prefix', async () => {
    const routes = join(await tempDir(), 'routes.json');
    const result = await deploy(['site', 'add', 'blog', '--host', 'blog.example.com', '--tag-prefix', 'blog-'], { PROXIMATION_ROUTES: routes });
    expect(result.stdout).toBe('added site blog (hosts blog.example.com; tag prefix blog-); routing table generation 1\n');
    expect(findSite(await readRoutingTableFile(routes), 'blog').tagPrefix).toBe('blog-');
  });

  it('succeeds without changing anything when the site exists as given', async () => {
    const routes = await routesWithDev();
    const before = await readFile(routes, 'utf8');
    const result = await deploy(['site', 'add', 'dev', '--host', 'dev.example.com', '--routes', routes]);
    expect(result).toEqual({
      code: 0,
      stdout: 'site dev already exists with these hosts and tag prefix devbuild-; nothing changed (routing table generation 1)\n',
      stderr: '',
    });
    expect(await readFile(routes, 'utf8')).toBe(before);
  });

  it('shows its help', async () => {
    const result = await deploy(['site', 'add', '--help']);
    expect(result.code).toBe(0);
    expect(result.stdout).toMatch(/^Usage: deploy site add <site> --host <name>/);
  });

  it.each([
    [['site', 'add', '--host', 'a.com'], 'Missing the site name'],
    [['site', 'add', 'dev'], 'Missing --host: give each hostname of site "dev" with its own --host'],
    [['site', 'add', 'dev', 'dev.example.com'], 'Unexpected argument "dev.example.com"'],
    [['site', 'add', 'dev', '--hosts', 'a.com'], 'Unknown option --hosts.'],
    [['site', 'add', 'dev', '--host'], "Option '--host' argument is ambiguous"],
  ])('exits 2 for %j without touching the routing table', async (argv, message) => {
    const routes = await routesWithDev();
    const before = await readFile(routes, 'utf8');
    const result = await deploy([...argv, '--routes', routes]);
    expect(result.code).toBe(2);
    expect(result.stderr).toContain(`deploy: ${message}`);
    expect(result.stderr).toContain('Run "deploy site add --help" for usage.');
    expect(await readFile(routes, 'utf8')).toBe(before);
  });

  it('exits 2 when no routing table is given', async () => {
    const result = await deploy(['site', 'add', 'dev', '--host', 'a.com'], { PROXIMATION_ROUTES: '' });
    expect(result.code).toBe(2);
    expect(result.stderr).toContain('No routing table given: pass --routes FILE or set PROXIMATION_ROUTES');
  });

  it.each([
    [['site', 'add', 'shop', '--host', 'shop.example.com:443'], 'Invalid hostname "shop.example.com:443" in the hosts of site "shop"'],
    [['site', 'add', 'Shop', '--host', 'shop.example.com'], 'Invalid site name "Shop"'],
    [['site', 'add', 'dev', '--host', 'other.example.com'], 'Site "dev" already exists with hosts dev.example.com'],
    [['site', 'add', 'shop', '--host', 'dev.example.com'], 'Host "dev.example.com" already belongs to site "dev"'],
    [['site', 'add', 'shop', '--host', 'shop.example.com', '--tag-prefix', 'devbuild-'], 'Tag prefix "devbuild-" is already used by site "dev"'],
  ])('exits 1 for %j and leaves the routing table as it was', async (argv, message) => {
    const routes = await routesWithDev();
    const before = await readFile(routes, 'utf8');
    const result = await deploy([...argv, '--routes', routes]);
    expect(result).toMatchObject({ code: 1, stdout: '' });
    expect(result.stderr).toContain(`deploy: ${message}`);
    expect(await readFile(routes, 'utf8')).toBe(before);
  });
});

describe('deploy register', () => {
  it('registers and activates a version named by --site and --version', async () => {
    const routes = await routesWithDev();
    const result = await deploy(['register', '--site', 'dev', '--version', 'devbuild-41', '--upstream', 'http://10.0.1.7:8080', '--routes', routes]);
    expect(result).toEqual({ code: 0, stdout: 'registered dev/devbuild-41 (1 upstream), active; routing table generation 2\n', stderr: '' });
    const dev = findSite(await readRoutingTableFile(routes), 'dev');
    expect(dev.activeVersion).toBe('devbuild-41');
    expect(dev.versions[0]).toMatchObject({ name: 'devbuild-41', upstreams: ['http://10.0.1.7:8080'] });
  });

  it('finds the site by tag prefix with --tag, and keeps the previous version for rollback', async () => {
    const routes = await routesWithDev();
    await deploy(['register', '--tag', 'devbuild-41', '--upstream', 'http://10.0.1.7:8080', '--routes', routes]);
    const result = await deploy(['register', '--tag', 'devbuild-42', '--upstream', 'http://10.0.1.9:8080/', '--upstream', 'http://10.0.1.10:8080', '--routes', routes]);
    expect(result.stdout).toBe('registered dev/devbuild-42 (2 upstreams), active; routing table generation 3\n');
    const dev = findSite(await readRoutingTableFile(routes), 'dev');
    expect(dev).toMatchObject({ activeVersion: 'devbuild-42', history: ['devbuild-41'] });
    expect(dev.versions[1]!.upstreams).toEqual(['http://10.0.1.9:8080', 'http://10.0.1.10:8080']);
  });

  it('changes nothing when the same version is registered again, and re-activates an older one', async () => {
    const routes = await routesWithDev();
    const register = (tag: string) => deploy(['register', '--tag', tag, '--upstream', `http://${tag}:8080`, '--routes', routes]);
    await register('devbuild-1');
    await register('devbuild-2');
    const before = await readFile(routes, 'utf8');
    expect((await register('devbuild-2')).stdout).toBe(
      'dev/devbuild-2 is already registered with these upstreams and active; nothing changed (routing table generation 3)\n',
    );
    expect(await readFile(routes, 'utf8')).toBe(before);
    expect((await register('devbuild-1')).stdout).toBe('activated dev/devbuild-1 (already registered with these 1 upstream); routing table generation 4\n');
  });

  it('refuses other upstreams for an existing version unless --replace is given', async () => {
    const routes = await routesWithDev();
    const argv = ['register', '--site', 'dev', '--version', 'v1', '--routes', routes];
    await deploy([...argv, '--upstream', 'http://a:8080']);
    const before = await readFile(routes, 'utf8');
    const refused = await deploy([...argv, '--upstream', 'http://b:8080']);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toContain('deploy: Version dev/v1 is already registered with upstreams http://a:8080');
    expect(await readFile(routes, 'utf8')).toBe(before);
    const replaced = await deploy([...argv, '--upstream', 'http://b:8080', '--replace']);
    expect(replaced.stdout).toBe('replaced dev/v1 (1 upstream), active; routing table generation 3\n');
  });

  it('shows its help, stating that activation is not health-gated yet', async () => {
    const result = await deploy(['register', '-h']);
    expect(result.code).toBe(0);
    expect(result.stdout).toContain('does not wait for the\nupstreams to pass a health check');
  });

  it('prefers --routes over PROXIMATION_ROUTES', async () => {
    const routes = await routesWithDev();
    const elsewhere = join(await tempDir(), 'routes.json');
    const result = await deploy(['register', '--tag', 'devbuild-1', '--upstream', 'http://a', '--routes', routes], { PROXIMATION_ROUTES: elsewhere });
    expect(result.code).toBe(0);
    expect(findSite(await readRoutingTableFile(routes), 'dev').activeVersion).toBe('devbuild-1');
  });

  it.each([
    [['--tag', 'devbuild-1', '--site', 'dev', '--upstream', 'http://a'], 'Give either --tag, or --site and --version, not both.'],
    [['--site', 'dev', '--upstream', 'http://a'], 'Say which version to register: --site <site> --version <version>, or --tag <tag>.'],
    [['--tag', 'devbuild-1'], 'Missing --upstream'],
    [['devbuild-1', '--upstream', 'http://a'], 'Unexpected argument "devbuild-1".'],
    [['--tag', 'devbuild-1', '--upstream', 'http://a', '--activate'], 'Unknown option --activate.'],
  ])('exits 2 for %j without touching the routing table', async (argv, message) => {
    const routes = await routesWithDev();
    const before = await readFile(routes, 'utf8');
    const result = await deploy(['register', ...argv, '--routes', routes]);
    expect(result.code).toBe(2);
    expect(result.stderr).toContain(`deploy: ${message}`);
    expect(result.stderr).toContain('Run "deploy register --help" for usage.');
    expect(await readFile(routes, 'utf8')).toBe(before);
  });

  it('exits 2 naming both ways to give the routing table when neither is set', async () => {
    const result = await deploy(['register', '--tag', 'devbuild-1', '--upstream', 'http://a']);
    expect(result.code).toBe(2);
    expect(result.stderr).toContain('pass --routes FILE or set PROXIMATION_ROUTES');
  });

  it.each([
    [['--site', 'stage', '--version', 'v1', '--upstream', 'http://a'], 'Unknown site "stage": known sites: dev.'],
    [['--tag', 'nightly-1', '--upstream', 'http://a'], 'No site\'s tag prefix matches tag "nightly-1" (known tag prefixes: devbuild- (site dev))'],
    [['--tag', 'devbuild-1', '--upstream', '10.0.0.1:8080'], 'Invalid upstream "10.0.0.1:8080" for version dev/devbuild-1: it needs a scheme'],
    [['--site', 'dev', '--version', 'v 1', '--upstream', 'http://a'], 'Invalid version name "v 1"'],
  ])('exits 1 for %j and leaves the routing table as it was', async (argv, message) => {
    const routes = await routesWithDev();
    const before = await readFile(routes, 'utf8');
    const result = await deploy(['register', ...argv, '--routes', routes]);
    expect(result).toMatchObject({ code: 1, stdout: '' });
    expect(result.stderr).toContain(`deploy: ${message}`);
    expect(await readFile(routes, 'utf8')).toBe(before);
  });

  it('exits 1 with the validation error when the routing table file is invalid, leaving it as it was', async () => {
    const routes = join(await tempDir(), 'routes.json');
    const broken = '{"schemaVersion": 1, "generation": 1, "sites": [{"name": "dev"}]}';
    await writeFile(routes, broken);
    const result = await deploy(['register', '--tag', 'devbuild-1', '--upstream', 'http://a', '--routes', routes]);
    expect(result.code).toBe(1);
    expect(result.stderr).toContain(`deploy: Invalid routing table ${routes}: sites[0].hosts: required field is missing`);
    expect(await readFile(routes, 'utf8')).toBe(broken);
  });
});
