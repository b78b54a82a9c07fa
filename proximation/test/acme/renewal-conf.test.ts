// The renewal file's configobj syntax: what certbot writes is read, and what we write reads back unchanged,
// by our parser and by configobj itself (the Python library certbot uses). certbot itself reading our
// files is checked against Pebble, in pebble.test.ts.
import { execFile } from 'node:child_process';
import fs from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { CertStore } from '../../src/certs/cert-store.js';
import { keyTypeParams, parseConfigObj, readRenewalConf, writeRenewalConf, type ConfSection } from '../../src/certs/renewal-conf.js';
import { withTempDir } from '../certs/helpers.js';

// Written by certbot 2.1 (webroot, so with its nested [[webroot_map]]), trimmed of nothing.
const CERTBOT_WEBROOT = `# renew_before_expiry = 30 days
version = 2.1.0
archive_dir = /etc/letsencrypt/archive/example.com
cert = /etc/letsencrypt/live/example.com/cert.pem
privkey = /etc/letsencrypt/live/example.com/privkey.pem
chain = /etc/letsencrypt/live/example.com/chain.pem
fullchain = /etc/letsencrypt/live/example.com/fullchain.pem

# Options used in the renewal process
[renewalparams]
account = 51e5a5572b63c1163ad343e094fd8195
authenticator = webroot
webroot_path = /var/www/html,
server = https://acme-v02.api.letsencrypt.org/directory
key_type = ecdsa
pref_challs = http-01, dns-01
manual_auth_hook = "/usr/local/bin/hook 'a b'"  # quoted
[[webroot_map]]
example.com = /var/www/html
www.example.com = /var/www/html
`;

/** What configobj (Python) makes of a file: the judge of our parser and writer. */
async function configobj(file: string): Promise<unknown> {
  const script = 'import configobj, json, sys; print(json.dumps(configobj.ConfigObj(sys.argv[1], encoding="utf-8").dict()))';
  return JSON.parse((await promisify(execFile)('/usr/bin/python3', ['-c', script, file])).stdout);
}

function asDict(section: ConfSection): Record<string, unknown> {
  return { ...Object.fromEntries(section.values), ...Object.fromEntries([...section.sections].map(([name, s]) => [name, asDict(s)])) };
}

describe('renewal files', () => {
  it("reads certbot's own files as configobj does: values, lists, quotes, comments, nested sections", () => withTempDir(async (dir) => {
    const root = parseConfigObj(CERTBOT_WEBROOT, 'example.com.conf');
    await fs.writeFile(path.join(dir, 'example.com.conf'), CERTBOT_WEBROOT);
    expect(asDict(root)).toEqual(await configobj(path.join(dir, 'example.com.conf')));
    expect(root.values.get('version')).toBe('2.1.0');
    expect(root.values.get('fullchain')).toBe('/etc/letsencrypt/live/example.com/fullchain.pem');
    const params = root.sections.get('renewalparams')!;
    expect(params.values.get('webroot_path')).toEqual(['/var/www/html']);
    expect(params.values.get('pref_challs')).toEqual(['http-01', 'dns-01']);
    expect(params.values.get('manual_auth_hook')).toBe("/usr/local/bin/hook 'a b'");
    expect(params.sections.get('webroot_map')!.values.get('www.example.com')).toBe('/var/www/html');
  }));

  it('writes what it reads back, in certbot 2.1 layout, atomically replacing the previous file', () =>
    withTempDir(async (dir) => {
      const store = new CertStore(path.join(dir, 'le'));
      const hook = `mkdir -p '/d/it''s' && printf %s "$CERTBOT_VALIDATION" > '/d'/"$CERTBOT_TOKEN"`;
      await writeRenewalConf(store, 'a.test', [['account', 'x'], ['server', 'https://old.test/dir']]);
      await writeRenewalConf(store, 'a.test', [
        ['account', 'abc'],
        ['server', 'https://127.0.0.1:14000/dir?x=1#y'],
        ['manual_auth_hook', hook],
        ['pref_challs', ['http-01']],
        ['empty', ''],
        ...keyTypeParams('ecdsa-p384'),
      ]);
      const file = path.join(store.configDir, 'renewal', 'a.test.conf');
      const text = await fs.readFile(file, 'utf8');
      expect(text.split('\n').slice(0, 8)).toEqual([
        '# renew_before_expiry = 30 days',
        'version = 2.1.0',
        `archive_dir = ${store.archiveDir('a.test')}`,
        `cert = ${store.liveDir('a.test')}/cert.pem`,
        `privkey = ${store.liveDir('a.test')}/privkey.pem`,
        `chain = ${store.liveDir('a.test')}/chain.pem`,
        `fullchain = ${store.liveDir('a.test')}/fullchain.pem`,
        '',
      ]);
      expect(text).toContain('pref_challs = http-01,\n');
      expect((await fs.stat(file)).mode & 0o777).toBe(0o644);
      expect(await fs.readdir(path.dirname(file))).toEqual(['a.test.conf']);
      const conf = (await readRenewalConf(store, 'a.test'))!;
      expect(conf).toMatchObject({ account: 'abc', server: 'https://127.0.0.1:14000/dir?x=1#y', keyType: 'ecdsa-p384' });
      expect(conf.params.get('manual_auth_hook')).toBe(hook);
      expect(conf.params.get('pref_challs')).toEqual(['http-01']);
      expect(conf.params.get('empty')).toBe('');
      expect(await readRenewalConf(store, 'b.test')).toBeUndefined();
      expect(await configobj(file)).toEqual(asDict(parseConfigObj(text, file)));
    }));

  it("derives the key type as certbot does: rsa 2048 when unsaid, secp256r1 by default, nothing for unknown ones", () => {
    const keyType = async (params: string): Promise<string | undefined> =>
      withTempDir(async (dir) => {
        const store = new CertStore(dir);
        await fs.mkdir(path.join(dir, 'renewal'));
        await fs.writeFile(path.join(dir, 'renewal', 'a.test.conf'), `cert = /x\n[renewalparams]\n${params}\n`);
        return (await readRenewalConf(store, 'a.test'))!.keyType;
      });
    return Promise.all([
      expect(keyType('')).resolves.toBe('rsa-2048'),
      expect(keyType('rsa_key_size = 4096')).resolves.toBe('rsa-4096'),
      expect(keyType('key_type = ecdsa')).resolves.toBe('ecdsa-p256'),
      expect(keyType('key_type = ecdsa\nelliptic_curve = secp384r1')).resolves.toBe('ecdsa-p384'),
      expect(keyType('key_type = ecdsa\nelliptic_curve = secp521r1')).resolves.toBeUndefined(),
    ]);
  });

  it('refuses files configobj would refuse, naming the file and line', () => {
    for (const [text, problem] of [
      ['a = 1\na = 2', 'line 2: duplicate key "a"'],
      ['[s]\n[[t]]\n[[[[u]]]]', 'line 3: a nested section without its parent'],
      ['just words', 'line 1: expected "key = value"'],
      ['a = "unterminated', 'line 1: cannot parse the value'],
      ["a = '''multi\nline'''", 'line 1: multi-line values are not supported'],
    ] as const) {
      expect(() => parseConfigObj(text, 'x.conf')).toThrow(`x.conf ${problem}`);
    }
  });
});
