// The RFC 2136 provider and the propagation check against a real BIND 9 (started by the tests with its
// own zone and TSIG key): what the server holds afterwards is read back with dig, not with our client.
import fs from 'node:fs/promises';
import dgram from 'node:dgram';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { PropagationCheck } from '../../src/certs/dns01/propagation.js';
import { openRfc2136Provider } from '../../src/certs/dns01/rfc2136.js';
import { useBind } from '../support/bind.js';

const bind = useBind();

async function credentials(changes: Record<string, string>): Promise<string> {
  const file = path.join(bind().dir, `creds-${Object.keys(changes).join('-') || 'same'}.ini`);
  let text = await fs.readFile(bind().credentialsFile, 'utf8');
  for (const [key, value] of Object.entries(changes)) text = text.replace(new RegExp(`^${key} = .*$`, 'm'), `${key} = ${value}`);
  await fs.writeFile(file, text);
  return file;
}

const propagation = (timeoutMs = 10_000): PropagationCheck =>
  new PropagationCheck({ resolvers: [{ host: '127.0.0.1', port: bind().port }], authoritativePort: bind().port, timeoutMs });

describe('RFC 2136 with TSIG against BIND', () => {
  it('adds a TXT value next to another at the same name and removes exactly it, the answers signed by the server', async () => {
    const provider = await openRfc2136Provider(bind().credentialsFile);
    const name = '_acme-challenge.two.dns.test';
    const base = { domain: 'two.dns.test', name, value: 'base-value' };
    const wildcard = { domain: 'two.dns.test', name, value: 'wildcard-value' };
    await provider.present(base);
    await provider.present(wildcard);
    expect((await bind().txt(name)).sort()).toEqual(['base-value', 'wildcard-value']);
    await propagation().waitFor(wildcard);
    await provider.cleanup(base);
    expect(await bind().txt(name)).toEqual(['wildcard-value']);
    await provider.cleanup(wildcard);
    await provider.cleanup(wildcard);
    expect(await bind().txt(name)).toEqual([]);
    expect(provider.renewalParams()).toEqual([['authenticator', 'dns-rfc2136'], ['dns_rfc2136_credentials', bind().credentialsFile]]);
  });

  it('reports a wrong secret with the server and its answer (NOTAUTH with the TSIG error BADSIG), and changes nothing', async () => {
    const provider = await openRfc2136Provider(await credentials({ dns_rfc2136_secret: Buffer.alloc(32, 7).toString('base64') }));
    const record = { domain: 'bad.dns.test', name: '_acme-challenge.bad.dns.test', value: 'v' };
    const err = await provider.present(record).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'ERR_DNS_UPDATE_REFUSED' });
    expect((err as Error).message).toContain(`127.0.0.1:${bind().port}`);
    expect((err as Error).message).toMatch(/answered BADSIG/);
    expect(await bind().txt(record.name)).toEqual([]);
  });

  it('reports an unknown key name as BADKEY, and a key the zone does not allow as REFUSED', async () => {
    const unknown = await openRfc2136Provider(await credentials({ dns_rfc2136_name: 'nobody.' }));
    await expect(unknown.present({ domain: 'k.dns.test', name: '_acme-challenge.k.dns.test', value: 'v' })).rejects.toThrow(/answered BADKEY/);
    // The server knows the key but only lets it update its one zone; a name outside it is not found at all.
    const other = await openRfc2136Provider(bind().credentialsFile);
    await expect(other.present({ domain: 'elsewhere.test', name: '_acme-challenge.elsewhere.test', value: 'v' })).rejects.toMatchObject({
      code: 'ERR_DNS_ZONE_NOT_FOUND',
      message: expect.stringContaining(`no zone at the DNS server 127.0.0.1:${bind().port} holds _acme-challenge.elsewhere.test`),
    });
  });

  it('refuses a credentials file that is not certbot\'s dns-rfc2136 one, naming the entry', async () => {
    await expect(openRfc2136Provider(await credentials({ dns_rfc2136_server: 'ns1.dns.test' }))).rejects.toMatchObject({
      code: 'ERR_DNS_CREDENTIALS_INVALID',
      message: expect.stringContaining('dns_rfc2136_server must be the IP address'),
    });
    await expect(openRfc2136Provider(path.join(bind().dir, 'missing.ini'))).rejects.toMatchObject({ code: 'ERR_DNS_CREDENTIALS_INVALID' });
  });

  it('follows a CNAME on _acme-challenge into the zone it delegates to', async () => {
    // Set up with nsupdate, the server's own tool, not with the code under test.
    await nsupdate(`update add _acme-challenge.alias.dns.test. 60 CNAME target.dns.test.\n`);
    expect(await propagation().challengeTarget('_acme-challenge.alias.dns.test')).toBe('target.dns.test');
    expect(await propagation().challengeTarget('_acme-challenge.plain.dns.test')).toBe('_acme-challenge.plain.dns.test');
  });

  it('times out waiting for an authoritative server that never answers, naming it', async () => {
    const silent = dgram.createSocket('udp4');
    await new Promise<void>((resolve) => silent.bind(0, '127.0.0.1', resolve));
    try {
      const check = new PropagationCheck({ resolvers: [{ host: '127.0.0.1', port: bind().port }], authoritativePort: silent.address().port, timeoutMs: 1000 });
      await expect(check.waitFor({ domain: 'x.dns.test', name: '_acme-challenge.x.dns.test', value: 'v' })).rejects.toMatchObject({
        code: 'ERR_DNS_PROPAGATION_TIMEOUT',
        message: expect.stringContaining(`127.0.0.1:${silent.address().port}`),
      });
    } finally {
      silent.close();
    }
  });
});

async function nsupdate(commands: string): Promise<void> {
  const { execFile } = await import('node:child_process');
  await new Promise<void>((resolve, reject) => {
    const child = execFile('nsupdate', ['-y', `hmac-sha256:${bind().keyName}:${bind().secret}`], (err) => (err ? reject(err) : resolve()));
    child.stdin!.end(`server 127.0.0.1 ${bind().port}\nzone dns.test\n${commands}send\n`);
  });
}
