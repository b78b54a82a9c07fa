// The account store on real files, with certbot's own code as the judge of the account id. Registration
// at a real CA is covered in pebble.test.ts; here `register` stands for the CA.
import { execFile } from 'node:child_process';
import fs from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { AccountStore, serverPath } from '../../src/certs/account-store.js';
import { withTempDir } from '../certs/helpers.js';

const DIRECTORY = 'https://acme.test:14000/acme/dir';

function store(dir: string): AccountStore {
  return new AccountStore(dir, DIRECTORY);
}

describe('AccountStore', () => {
  it("keys accounts by the directory URL as certbot's server_path does", () => {
    expect(serverPath('https://acme-v02.api.letsencrypt.org/directory')).toBe('acme-v02.api.letsencrypt.org/directory');
    expect(serverPath('https://127.0.0.1:14000/dir')).toBe('127.0.0.1:14000/dir');
    expect(serverPath('https://ca.test:443/a/b?x=1')).toBe('ca.test:443/a/b');
    expect(serverPath('https://ca.test')).toBe('ca.test');
  });

  it('registers once when instances race, and every instance gets the same account', () =>
    withTempDir(async (dir) => {
      let registrations = 0;
      const register = async (): Promise<string> => {
        registrations++;
        await new Promise((resolve) => setTimeout(resolve, 50));
        return `https://acme.test:14000/acct/${registrations}`;
      };
      const accounts = await Promise.all([store(dir), store(dir), store(dir)].map((s) => s.findOrCreate(register)));
      expect(registrations).toBe(1);
      expect(new Set(accounts.map((a) => a.id)).size).toBe(1);
      expect(accounts[0]!.url).toBe('https://acme.test:14000/acct/1');
      expect(accounts[0]!.dir).toBe(path.join(dir, 'accounts', 'acme.test:14000', 'acme', 'dir', accounts[0]!.id));
      expect(await fs.readdir(path.join(dir, 'accounts', 'acme.test:14000', 'acme', 'dir'))).toEqual([accounts[0]!.id]);
      // certbot's files and modes: the key readable by its owner only, every directory from accounts/ down 0700.
      expect((await fs.readdir(accounts[0]!.dir)).sort()).toEqual(['meta.json', 'private_key.json', 'regr.json']);
      expect((await fs.stat(path.join(accounts[0]!.dir, 'private_key.json'))).mode & 0o777).toBe(0o400);
      for (const sub of ['accounts', 'accounts/acme.test:14000', `accounts/acme.test:14000/acme/dir/${accounts[0]!.id}`]) {
        expect((await fs.stat(path.join(dir, sub))).mode & 0o777, sub).toBe(0o700);
      }
    }));

  it("names the account directory with certbot's own account id", () =>
    withTempDir(async (dir) => {
      const account = await store(dir).findOrCreate(async () => 'https://acme.test:14000/acct/1');
      const script = [
        'import sys, josepy',
        'from acme import messages',
        'from certbot._internal.account import Account',
        'key = josepy.JWK.json_loads(open(sys.argv[1]).read())',
        'print(Account(messages.RegistrationResource(body={}, uri="x"), key).id)',
      ].join('\n');
      const { stdout } = await promisify(execFile)('/usr/bin/python3', ['-c', script, path.join(account.dir, 'private_key.json')]);
      expect(stdout.trim()).toBe(account.id);
    }));

  it('skips incomplete entries and picks the oldest complete account', () =>
    withTempDir(async (dir) => {
      const first = await store(dir).findOrCreate(async () => 'https://acme.test:14000/acct/1');
      const serverDir = path.dirname(first.dir);
      // A second, newer account (as certbot may leave after `certbot register` twice), and a broken entry.
      const newer = path.join(serverDir, 'f'.repeat(32));
      await fs.cp(first.dir, newer, { recursive: true });
      await fs.writeFile(path.join(newer, 'meta.json'), JSON.stringify({ creation_dt: '2999-01-01T00:00:00Z', creation_host: 'x' }));
      const older = path.join(serverDir, '0'.repeat(32));
      await fs.mkdir(older);
      await fs.cp(path.join(first.dir, 'private_key.json'), path.join(older, 'private_key.json'));
      expect((await store(dir).find())?.id).toBe(first.id);
    }));
});
