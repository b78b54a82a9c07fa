import { X509Certificate } from 'node:crypto';
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { chmod, chown, mkdir, readFile, readdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { main } from '../src/cli.js';
import { SETTINGS } from '../src/config.js';
import { LocalCa } from '../src/certs/local-ca.js';
import { localCaDir } from '../src/certs/local-issuer.js';
import { httpRequest, table, tempDir, managed, writeRoutes } from './support/fixtures.js';
import { CLI_PATH, capturedIo, freePorts, runMain, spawnCli, waitUntil } from './support/process.js';

const resources = managed();

const VERSION = (JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string }).version;

const run = runMain;

async function stateDir(): Promise<string> {
  const dir = await tempDir();
  resources.defer(() => dir.close());
  return path.join(dir.path, 'le');
}

/** A state directory holding a local CA, as a proxy on the local issuer leaves it; resolves to the dir and the CA's root. */
async function localCaState(): Promise<{ dir: string; rootPem: string }> {
  const dir = await stateDir();
  return { dir, rootPem: (await LocalCa.open(localCaDir(dir))).rootPem };
}

describe('proximation CLI, in-process', () => {
  it('--version prints the package version', async () => {
    const res = await run(['--version']);
    expect(res).toEqual({ code: 0, out: `proximation ${VERSION}\n`, err: '' });
  });

  it('--help lists every command and every setting with its flag and PROXIMATION_* variable', async () => {
    const res = await run(['--help']);
    expect(res.code).toBe(0);
    for (const command of ['serve', 'demo', 'ca-cert']) expect(res.out).toContain(command);
    expect(SETTINGS.length).toBeGreaterThan(0);
    for (const s of SETTINGS) {
      expect(s.env).toMatch(/^PROXIMATION_[A-Z0-9_]+$/);
      expect(res.out).toContain(`--${s.flag} <value>`);
      expect(res.out).toContain(`${s.env}: `);
    }
  });

  it('exits 2 with a usage message for an unknown command, a missing command and an unknown flag, in its own words', async () => {
    const unknown = await run(['srve']);
    expect(unknown).toEqual({ code: 2, out: '', err: 'proximation: Unknown command "srve". Did you mean serve?\nRun "proximation --help" for usage.\n' });

    const none = await run([]);
    expect(none.code).toBe(2);
    expect(none.err).toContain('No command given.');

    const flag = await run(['serve', '--bogus']);
    expect(flag).toEqual({ code: 2, out: '', err: 'proximation: Unknown option --bogus.\nRun "proximation serve --help" for usage.\n' });
    // Node's parseArgs wording (its advice about "--") never reaches the user.
    const missing = await run(['serve', '--http-port']);
    expect(missing.err).toBe('proximation: --http-port needs a value, such as --http-port <value>.\nRun "proximation serve --help" for usage.\n');
    expect((await run(['serve', '--http-prot', '80'])).err).toContain('Unknown option --http-prot. Did you mean --http-port?');
    expect((await run(['serve', '--json'])).err).toContain('--json is an option of "proximation certs" only.\nRun "proximation certs --help"');
    // The command may come after the settings' flags.
    expect((await run(['--letsencrypt-dir', '/nonexistent', 'serve', '--bogus'])).err).toContain('Unknown option --bogus.');
  });

  it('exits 2 for every malformed flag value, naming the flag as typed, and 1 for a malformed variable', async () => {
    for (const [argv, message] of [
      [['serve', '--routes-poll', '5'], 'Invalid duration "5" for --routes-poll: add a unit'],
      [['renew', '--random-delay', '5'], 'Invalid duration "5" for --random-delay: add a unit'],
      [['serve', '--http-port', '70000'], '--http-port="70000" is not valid: expected a port number from 0 to 65535.'],
      [['serve', '--acme-directory', 'ftp://x'], '--acme-directory="ftp://x" is not valid'],
      [['certs', '--log-level', 'loud'], '--log-level="loud" is not valid'],
    ] as const) {
      const res = await run([...argv]);
      expect(res.code, argv.join(' ')).toBe(2);
      expect(res.err).toContain(`proximation: ${message}`);
      expect(res.err).toContain('for usage.');
    }
    const res = await run(['serve'], { PROXIMATION_HTTP_PORT: 'abc', PROXIMATION_LETSENCRYPT_DIR: await stateDir() });
    expect(res.code).toBe(1);
    expect(res.err).toContain('PROXIMATION_HTTP_PORT="abc"');
    expect(res.err).toContain('a port number');
    // A flag wins over the variable, and its error names the flag.
    const flag = await run(['serve', '--http-port', '70000'], { PROXIMATION_HTTP_PORT: '80' });
    expect(flag.err).toContain('--http-port="70000"');
  });

  it('shows one command\'s help with "<command> --help" and "help <command>", and the overview with "help"', async () => {
    const renewHelp = await run(['renew', '--help']);
    expect(renewHelp.code).toBe(0);
    expect(renewHelp.out).toMatch(/^Usage: proximation renew \[options\]/);
    expect(renewHelp.out).toContain('--random-delay DURATION');
    expect(renewHelp.out).toContain('PROXIMATION_ACME_DIRECTORY');
    expect(await run(['help', 'renew'])).toEqual(renewHelp);
    const certsHelp = await run(['certs', '-h']);
    expect(certsHelp.out).toContain('--json');
    expect(certsHelp.out).toContain('PROXIMATION_LETSENCRYPT_DIR');
    expect(certsHelp.out).not.toContain('PROXIMATION_HTTP_PORT');
    expect(certsHelp.out).not.toContain('--random-delay');
    expect((await run(['help'])).out).toBe((await run(['--help'])).out);
    expect((await run(['help', 'srve'])).err).toContain('Did you mean serve?');
  });

  it('warns about a PROXIMATION_* variable that is not a setting, naming the nearest one, and still runs', async () => {
    const res = await run(['ca-cert'], { PROXIMATION_LETSENCRYPT_DIR: (await localCaState()).dir, PROXIMATION_HTTP_PROT: '8080', PROXIMATION_ZZZZZZZZZZZZ: '1' });
    expect(res.code).toBe(0);
    expect(res.err).toBe(
      'proximation: warning: PROXIMATION_HTTP_PROT is set but is not a setting; it is ignored. Did you mean PROXIMATION_HTTP_PORT?\n' +
        'proximation: warning: PROXIMATION_ZZZZZZZZZZZZ is set but is not a setting; it is ignored.\n',
    );
  });

  it('refuses settings that contradict each other before starting, naming both', async () => {
    const env = { PROXIMATION_LETSENCRYPT_DIR: await stateDir(), PROXIMATION_REQUEST_TIMEOUT: '5s' };
    const timeouts = await run(['serve'], env);
    expect(timeouts).toEqual({
      code: 1,
      out: '',
      err:
        'proximation: PROXIMATION_REQUEST_TIMEOUT=5s is shorter than PROXIMATION_HEADERS_TIMEOUT (default)=10s: a request cannot take ' +
        'less time than its headers; raise the request timeout or lower the headers timeout.\n',
    });
    const ports = await run(['serve', '--https-port', '8443', '--admin-port', '8443'], { PROXIMATION_LETSENCRYPT_DIR: env.PROXIMATION_LETSENCRYPT_DIR });
    expect(ports.code).toBe(1);
    expect(ports.err).toContain('--https-port=8443 and --admin-port=8443 are the same port');
  });

  it('refuses the local CA on a directory that holds an ACME account, for serve and renew, and changes nothing', async () => {
    const dir = await stateDir();
    const account = path.join(dir, 'accounts', 'acme-v02.api.letsencrypt.org', 'directory', '0123abcd');
    await mkdir(account, { recursive: true });
    await writeFile(path.join(account, 'regr.json'), '{"body": {}, "uri": "https://acme-v02.api.letsencrypt.org/acme/acct/1"}');
    await writeRoutes(path.join(dir, 'proximation', 'routes.json'), table([{ name: 'app', hosts: ['app.test'] }]));
    const before = await readdir(dir, { recursive: true });
    for (const argv of [['serve'], ['renew']]) {
      const res = await run(argv, { PROXIMATION_LETSENCRYPT_DIR: dir, PROXIMATION_ISSUER: 'local' });
      expect(res.code, argv[0]).toBe(1);
      expect(res.err).toContain(`${dir} holds ACME accounts`);
      expect(res.err).toContain('PROXIMATION_ISSUER=acme');
    }
    expect(await readdir(dir, { recursive: true })).toEqual(before);
  });

  it('ca-cert prints the local CA root as a PEM certificate that is a CA, the same one each time', async () => {
    const { dir, rootPem } = await localCaState();
    const env = { PROXIMATION_LETSENCRYPT_DIR: dir };
    const first = await run(['ca-cert'], env);
    expect(first.code).toBe(0);
    expect(first.out).toBe(rootPem);
    expect(first.out).toMatch(/^-----BEGIN CERTIFICATE-----\n[\s\S]+\n-----END CERTIFICATE-----\n?$/);
    const cert = new X509Certificate(first.out);
    expect(cert.ca).toBe(true);
    expect(cert.verify(cert.publicKey)).toBe(true);
    const second = await run(['ca-cert'], env);
    expect(second.out).toBe(first.out);
  });

  it('ca-cert, certs and renew fail on a directory that is not a proximation directory, naming it and where it came from, and create nothing', async () => {
    const missing = await stateDir();
    const empty = await stateDir();
    await mkdir(empty, { recursive: true });
    for (const command of ['ca-cert', 'certs', 'renew']) {
      const byVariable = await run([command], { PROXIMATION_LETSENCRYPT_DIR: missing });
      expect(byVariable, command).toEqual({
        code: 1,
        out: '',
        err: `proximation: The letsencrypt directory ${missing} (from PROXIMATION_LETSENCRYPT_DIR) does not exist: point PROXIMATION_LETSENCRYPT_DIR (or --letsencrypt-dir) at the directory the proxies use.\n`,
      });
      const byFlag = await run([command, '--letsencrypt-dir', empty], {});
      expect(byFlag.code, command).toBe(1);
      expect(byFlag.err).toContain(`proximation: ${empty} (from --letsencrypt-dir) is not a proximation directory: it holds none of proximation/, live/, accounts/, renewal/.`);
      // Without either, the default is named as such (this machine has no /etc/letsencrypt/proximation, or it is one).
      const byDefault = await run([command], {});
      if (byDefault.code === 1 && byDefault.err.includes('/etc/letsencrypt (')) expect(byDefault.err).toContain('/etc/letsencrypt (the default; set PROXIMATION_LETSENCRYPT_DIR or --letsencrypt-dir)');
    }
    await expect(readdir(missing)).rejects.toMatchObject({ code: 'ENOENT' });
    expect(await readdir(empty)).toEqual([]);
  });

  it('ca-cert creates no local CA: on an ACME directory, or a proximation directory that has none yet, it says why', async () => {
    const acme = await stateDir();
    await mkdir(path.join(acme, 'accounts', 'acme-v02.api.letsencrypt.org', 'directory', '0123abcd'), { recursive: true });
    await writeFile(path.join(acme, 'accounts', 'acme-v02.api.letsencrypt.org', 'directory', '0123abcd', 'regr.json'), '{"body": {}}');
    await writeRoutes(path.join(acme, 'proximation', 'routes.json'), table([]));
    const before = await readdir(acme, { recursive: true });
    const onAcme = await run(['ca-cert'], { PROXIMATION_LETSENCRYPT_DIR: acme });
    expect(onAcme.code).toBe(1);
    expect(onAcme.err).toContain(`${acme} (from PROXIMATION_LETSENCRYPT_DIR) holds ACME accounts: its certificates come from the ACME CA`);
    const renewed = await run(['renew'], { PROXIMATION_LETSENCRYPT_DIR: acme, PROXIMATION_ISSUER: 'acme', PROXIMATION_ACME_DIRECTORY: 'https://127.0.0.1:1/dir' });
    expect(renewed.code).toBe(0);
    expect(await readdir(acme, { recursive: true })).toEqual(before);

    const fresh = await stateDir();
    await writeRoutes(path.join(fresh, 'proximation', 'routes.json'), table([]));
    const noCa = await run(['ca-cert'], { PROXIMATION_LETSENCRYPT_DIR: fresh });
    expect(noCa.code).toBe(1);
    expect(noCa.err).toContain(`There is no local CA at ${path.join(fresh, 'proximation', 'local-ca', 'root.pem')} (from PROXIMATION_LETSENCRYPT_DIR)`);
    expect(await readdir(path.join(fresh, 'proximation'))).toEqual(['routes.json']);
  });

  it('renew fails without a routing table, naming where it looked, instead of reporting nothing to renew', async () => {
    const { dir } = await localCaState();
    const res = await run(['renew'], { PROXIMATION_LETSENCRYPT_DIR: dir });
    expect(res.code).toBe(1);
    expect(res.out).toBe('');
    expect(res.err).toContain(`No routing table at ${path.join(dir, 'proximation', 'routes.json')} (the default; set PROXIMATION_ROUTES or --routes)`);
    const mistyped = path.join(dir, 'proximation', 'rotues.json');
    expect((await run(['renew', '--routes', mistyped], { PROXIMATION_LETSENCRYPT_DIR: dir })).err).toContain(`No routing table at ${mistyped} (from --routes)`);
  });

  it('a second demo on the ports of a running one fails before it changes the running one\'s routing table', async () => {
    const dir = await stateDir();
    const [http, https, admin] = (await freePorts(3)) as [number, number, number];
    const env = {
      PROXIMATION_LETSENCRYPT_DIR: dir,
      PROXIMATION_HTTP_PORT: String(http),
      PROXIMATION_HTTPS_PORT: String(https),
      PROXIMATION_ADMIN_PORT: String(admin),
      PROXIMATION_LISTEN_ADDRESS: '127.0.0.1',
      PROXIMATION_WORKERS: '1',
      PROXIMATION_LOG_FORMAT: 'json',
    };
    const first = spawnCli(['demo'], env);
    resources.defer(async () => {
      if (first.child.exitCode === null && first.child.signalCode === null) first.child.kill('SIGKILL');
      await first.exited;
    });
    await waitUntil(async () => (await httpRequest(admin, 'localhost', '/healthz').catch(() => undefined))?.status === 200, 'the first demo to serve', 20_000);
    const routes = path.join(dir, 'proximation', 'routes.json');
    const before = await readFile(routes, 'utf8');
    for (const [port, setting] of [[https, 'PROXIMATION_HTTPS_PORT'], [admin, 'PROXIMATION_ADMIN_PORT']] as const) {
      // Only one port taken at a time, the others moved to free ones: each is checked.
      const others = await freePorts(3);
      const second = await run(['demo'], {
        ...env,
        PROXIMATION_HTTP_PORT: String(others[0]),
        PROXIMATION_HTTPS_PORT: setting === 'PROXIMATION_HTTPS_PORT' ? String(port) : String(others[1]),
        PROXIMATION_ADMIN_PORT: setting === 'PROXIMATION_ADMIN_PORT' ? String(port) : String(others[2]),
      });
      expect(await readFile(routes, 'utf8')).toBe(before);
      expect(second.code).toBe(1);
      expect(second.err).toContain(`proximation: Port ${port} (${setting}) is in use, probably by a proximation demo that is already running; nothing was changed.`);
    }
    expect((await httpRequest(admin, 'localhost', '/healthz')).status).toBe(200);
  });

  it('serve runs until its signal is aborted, then drains and returns 0', async () => {
    const streams = capturedIo();
    const abort = new AbortController();
    const letsencryptDir = await stateDir();
    const env = {
      PROXIMATION_HTTP_PORT: '0',
      PROXIMATION_HTTPS_PORT: '0',
      PROXIMATION_ADMIN_PORT: '0',
      PROXIMATION_LISTEN_ADDRESS: '127.0.0.1',
      PROXIMATION_LETSENCRYPT_DIR: letsencryptDir,
      PROXIMATION_LOG_FORMAT: 'json',
      // In-process, under vitest: worker processes would need the compiled entry point (test/cluster/ runs them).
      PROXIMATION_WORKERS: '1',
    };
    const serving = new Promise<Record<string, unknown>>((resolve) => {
      let pending = '';
      streams.stdout.on('data', (c: Buffer) => {
        pending += c.toString();
        for (const line of pending.split('\n').slice(0, -1)) {
          const parsed = JSON.parse(line) as Record<string, unknown>;
          if (parsed.msg === 'proximation is serving') resolve(parsed);
        }
        pending = pending.slice(pending.lastIndexOf('\n') + 1);
      });
    });
    const exit = main(['serve'], { stdout: streams.stdout, stderr: streams.stderr, env, signal: abort.signal });
    resources.defer(async () => {
      abort.abort();
      await exit;
    });
    const started = await Promise.race([serving, exit.then((code) => Promise.reject(new Error(`serve returned ${code} early: ${streams.err()}`)))]);
    const health = await httpRequest(started.admin as number, 'localhost', '/healthz');
    expect(health.status).toBe(200);

    abort.abort();
    expect(await exit).toBe(0);
    expect(streams.err()).toBe('');
    expect(streams.out()).toContain('"msg":"stopped"');
  });
});

describe('proximation CLI, as a real process', () => {
  it('--version exits 0 and prints the version', async () => {
    const cli = spawnCli(['--version']);
    expect(await cli.exited).toEqual({ code: 0, signal: null });
    expect(cli.stdout()).toBe(`proximation ${VERSION}\n`);
  });

  it('serve with PROXIMATION_ISSUER=bogus exits 1 naming the variable and the value', async () => {
    const cli = spawnCli(['serve'], { PROXIMATION_ISSUER: 'bogus', PROXIMATION_LETSENCRYPT_DIR: await stateDir() });
    expect(await cli.exited).toEqual({ code: 1, signal: null });
    expect(cli.stderr()).toContain('PROXIMATION_ISSUER="bogus"');
    expect(cli.stderr()).toContain('one of local, acme');
    expect(cli.stdout()).toBe('');
  });

  it('names the path, the uid it runs as and the owner the state directory needs when access is refused', async () => {
    const dir = await stateDir();
    await chmod(path.dirname(dir), 0o755);
    await mkdir(dir, { mode: 0o700 });
    // As root, the directory belongs to another uid and the process runs without capabilities (util-linux
    // setpriv clears the bounding set), so root's override of file permissions is gone, as for any user.
    // Otherwise, take the permissions away from ourselves.
    const asRoot = process.getuid!() === 0;
    const [uid, gid] = [process.getuid!(), process.getgid!()];
    const owner = asRoot ? 65534 : uid;
    if (asRoot) await chown(dir, 65534, 65534);
    else {
      await chmod(dir, 0o000);
      resources.defer(() => chmod(dir, 0o700));
    }
    for (const command of ['certs', 'serve']) {
      const argv = [process.execPath, CLI_PATH, command];
      const child = spawn(asRoot ? 'setpriv' : argv[0]!, asRoot ? ['--bounding-set=-all', '--', ...argv] : argv.slice(1), {
        env: { PATH: process.env.PATH, PROXIMATION_LETSENCRYPT_DIR: dir, PROXIMATION_HTTP_PORT: '0', PROXIMATION_HTTPS_PORT: '0', PROXIMATION_ADMIN_PORT: '0' },
        stdio: ['ignore', 'ignore', 'pipe'],
      });
      let err = '';
      child.stderr.on('data', (c: Buffer) => (err += c.toString()));
      const code = await new Promise<number | null>((resolve, reject) => {
        child.once('error', reject);
        child.once('close', resolve);
      });
      expect(code, err).toBe(1);
      expect(err).toMatch(new RegExp(`^proximation: Permission denied on ${dir}/\\S+ \\(\\w+\\): proximation runs as uid ${uid} \\(gid ${gid}\\), but ${dir} is owned by uid ${owner}`));
      expect(err).toContain(`Its owner must be uid ${uid}`);
      expect(err).toContain(`chown -R ${uid}:${gid} ${dir}`);
    }
  });
});
