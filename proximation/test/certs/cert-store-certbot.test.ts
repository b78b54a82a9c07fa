// certbot itself as the judge of the layout CertStore writes. Its own file: certbot takes seconds to start.
import { execFile } from 'node:child_process';
import { mkdir, symlink, unlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { CertStore } from '../../src/certs/cert-store.js';
import { LocalCa } from '../../src/certs/local-ca.js';
import { withTempDir } from './helpers.js';

/** `certbot certificates` output for a config dir; the lineage needs a renewal conf, which CertStore does not write. */
async function certbotCertificates(dir: string, store: CertStore, lineage: string): Promise<string> {
  const live = store.liveDir(lineage);
  await mkdir(join(store.configDir, 'renewal'), { recursive: true });
  await writeFile(
    join(store.configDir, 'renewal', `${lineage}.conf`),
    [
      'version = 2.1.0',
      `archive_dir = ${store.archiveDir(lineage)}`,
      ...['cert', 'privkey', 'chain', 'fullchain'].map((kind) => `${kind} = ${join(live, `${kind}.pem`)}`),
      '',
      '[renewalparams]',
      '',
    ].join('\n'),
  );
  const { stdout } = await promisify(execFile)('certbot', [
    'certificates',
    '--config-dir',
    store.configDir,
    '--work-dir',
    join(dir, 'work'),
    '--logs-dir',
    join(dir, 'logs'),
  ]);
  return stdout;
}

describe('CertStore as certbot sees it', () => {
  it('writes lineages that certbot lists as valid, and certbot rejects a mismatched key', () =>
    withTempDir(async (dir) => {
      const ca = await LocalCa.open(join(dir, 'ca'));
      const store = new CertStore(join(dir, 'letsencrypt'));
      await store.write('example.test', await ca.issue(['example.test', 'www.example.test']));
      await store.write('example.test', await ca.issue(['example.test', 'www.example.test']));
      const serial = (await store.read('example.test'))!.serialNumber;

      const listing = await certbotCertificates(dir, store, 'example.test');
      expect(listing).toContain('Certificate Name: example.test');
      expect(listing).toContain(`Serial Number: ${serial}`);
      expect(listing).toContain('Domains: example.test www.example.test');
      expect(listing).toMatch(/Expiry Date: .* \(VALID: (89|90) days\)/);

      const keyLink = join(store.liveDir('example.test'), 'privkey.pem');
      await unlink(keyLink);
      await symlink('../../archive/example.test/privkey1.pem', keyLink);
      expect(await certbotCertificates(dir, store, 'example.test')).not.toContain('Certificate Name: example.test');
    }));
});
