// The hook provider: commands run as certbot runs its manual hooks, here nsupdate against a real BIND 9,
// with Pebble (its -dnsserver pointed at that BIND) validating what they put up. Failures: a hook that
// exits non-zero, one that hangs (killed with what it started), one that never puts the record up.
import { X509Certificate } from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import type { DnsProviderSpec } from '../../src/certs/dns01/providers.js';
import { readRenewalConf } from '../../src/certs/renewal-conf.js';
import type { Bind } from '../support/bind.js';
import { bindDnsSettings, useBindAndPebble, dns01Issuer } from '../support/dns01.js';
import { managed, tempDir } from '../support/fixtures.js';
import { runCertbot, type Pebble } from '../support/pebble.js';
import { waitUntil } from '../support/process.js';

const resources = managed();
const the = useBindAndPebble();
let bind: Bind;
let pebble: Pebble;
beforeAll(() => ({ bind, pebble } = the));

/** A certbot-style hook: nsupdate with the test zone's key, at _acme-challenge.$CERTBOT_DOMAIN. */
function nsupdateHook(op: 'add' | 'delete'): string {
  const ttl = op === 'add' ? ' 60' : '';
  return (
    `printf 'server 127.0.0.1 ${bind.port}\\nzone dns.test\\nupdate ${op} _acme-challenge.%s.${ttl} TXT "%s"\\nsend\\n' "$CERTBOT_DOMAIN" "$CERTBOT_VALIDATION"` +
    ` | nsupdate -y hmac-sha256:${bind.keyName}:${bind.secret}`
  );
}

async function setup(spec: DnsProviderSpec, options: { hookTimeoutMs?: number; propagationTimeoutMs?: number } = {}) {
  const dir = await tempDir('proximation-hook-');
  resources.defer(() => dir.close());
  const le = path.join(dir.path, 'le');
  const dns = bindDnsSettings(bind, {
    provider: spec,
    ...(options.hookTimeoutMs === undefined ? {} : { hookTimeoutMs: options.hookTimeoutMs }),
    ...(options.propagationTimeoutMs === undefined ? {} : { propagation: { timeoutMs: options.propagationTimeoutMs } }),
  });
  return { le, ...(await dns01Issuer(pebble, bind, le, { dns })) };
}

/** A path in a fresh directory removed after the test, for what a hook leaves behind. */
async function scratchFile(name: string): Promise<string> {
  const dir = await tempDir('proximation-hook-out-');
  resources.defer(() => dir.close());
  return path.join(dir.path, name);
}

describe('DNS-01 through hooks', () => {
  it('orders a wildcard and its base name with certbot-style nsupdate hooks, and certbot renews the lineage with the same hooks', async () => {
    const hooks: DnsProviderSpec = { type: 'hook', authHook: nsupdateHook('add'), cleanupHook: nsupdateHook('delete') };
    const { le, store, manager } = await setup(hooks);
    expect((await manager.renew('*.hooked.dns.test', { force: false, dryRun: false })).status).toBe('renewed');
    expect((await manager.renew('hooked.dns.test', { force: false, dryRun: false })).status).toBe('renewed');
    expect(new X509Certificate((await store.read('_wildcard.hooked.dns.test'))!.certPem).subjectAltName).toBe('DNS:*.hooked.dns.test');
    expect(await bind.txt('_acme-challenge.hooked.dns.test')).toEqual([]);
    const conf = await readRenewalConf(store, 'hooked.dns.test');
    expect([conf!.params.get('authenticator'), conf!.params.get('manual_auth_hook'), conf!.params.get('pref_challs')]).toEqual(['manual', hooks.authHook, ['dns-01']]);
    expect(await runCertbot(pebble, le, 'renew', '--cert-name', 'hooked.dns.test', '--force-renewal', '--no-random-sleep-on-renew')).toContain('all renewals succeeded');
  });

  it('fails the order when the auth hook exits non-zero, with its status and output, runs the cleanup hook, and applies the backoff', async () => {
    const cleaned = await scratchFile('cleanup');
    const { manager } = await setup({ type: 'hook', authHook: 'echo "no credentials for the DNS API" >&2; exit 3', cleanupHook: `echo "$CERTBOT_DOMAIN" >> ${cleaned}` });
    const outcome = await manager.renew('exit.dns.test', { force: false, dryRun: false });
    expect(outcome).toMatchObject({ status: 'failed', backoff: { failures: 1 } });
    expect((outcome as { error: string }).error).toMatch(/the DNS auth hook for _acme-challenge\.exit\.dns\.test .* exited with status 3; it printed: no credentials for the DNS API/);
    expect(await fs.readFile(cleaned, 'utf8')).toBe('exit.dns.test\n');
  });

  it('kills a hook that hangs past the bound, with what it started', async () => {
    const pidFile = await scratchFile('pid');
    const { manager } = await setup({ type: 'hook', authHook: `sleep 300 & echo $! > ${pidFile}; wait`, cleanupHook: 'true' }, { hookTimeoutMs: 1000 });
    const outcome = await manager.renew('hang.dns.test', { force: false, dryRun: false });
    expect((outcome as { error: string }).error).toContain('ran longer than 1000 ms and was killed');
    const pid = Number(await fs.readFile(pidFile, 'utf8'));
    await waitUntil(() => {
      try {
        process.kill(pid, 0);
        return false;
      } catch {
        return true;
      }
    }, 'the sleep the hook started to be gone');
  });

  it('fails with a propagation timeout when the hook puts nothing up, and still runs the cleanup hook', async () => {
    const cleaned = await scratchFile('cleanup');
    const { manager } = await setup({ type: 'hook', authHook: 'true', cleanupHook: `echo cleaned > ${cleaned}` }, { propagationTimeoutMs: 1000 });
    const outcome = await manager.renew('nothing.dns.test', { force: false, dryRun: false });
    expect((outcome as { error: string }).error).toContain(`the TXT record _acme-challenge.nothing.dns.test was not answered by 127.0.0.1:${bind.port} within 1000 ms`);
    expect(await fs.readFile(cleaned, 'utf8')).toBe('cleaned\n');
  });
});
