// Wildcard hosts end to end on the local CA (which needs no challenge): routing one label under the
// wildcard with exact hosts winning, the wildcard certificate as curl and openssl see it, and the
// refusals of a wildcard on an ACME proxy without dns-01 by the admin API and by deploy.
import { execFile } from 'node:child_process';
import fs from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { deploy } from '../../../deploy/test/helpers.js';
import { CertStore } from '../../src/certs/cert-store.js';
import { TOKEN, postChange } from '../admin/api-request.js';
import { managed, table, tempDir } from '../support/fixtures.js';

const run = promisify(execFile);
const resources = managed();

async function curl(ca: string, port: number, host: string): Promise<{ code: number; body: string }> {
  const dir = await tempDir();
  resources.defer(() => dir.close());
  const caFile = path.join(dir.path, 'ca.pem');
  await fs.writeFile(caFile, ca);
  try {
    const { stdout } = await run('curl', ['-sS', '--cacert', caFile, '--resolve', `${host}:${port}:127.0.0.1`, `https://${host}:${port}/`]);
    return { code: 0, body: stdout };
  } catch (err) {
    return { code: (err as { code: number }).code, body: (err as { stderr: string }).stderr };
  }
}

describe('wildcard hosts', () => {
  it('route any one label under the wildcard, exact hosts first, under one wildcard certificate', async () => {
    const wild = await resources.upstream((_req, res) => res.end('wild'));
    const exact = await resources.upstream((_req, res) => res.end('exact'));
    const proxy = await resources.proxy(
      table([
        { name: 'wild', hosts: ['*.wild.test'], upstreams: [wild.origin] },
        { name: 'exact', hosts: ['exact.wild.test'], upstreams: [exact.origin] },
      ]),
    );
    const port = proxy.server.https.port;
    expect(await curl(proxy.ca, port, 'a.wild.test')).toEqual({ code: 0, body: 'wild' });
    expect(await curl(proxy.ca, port, 'other.wild.test')).toEqual({ code: 0, body: 'wild' });
    expect(await curl(proxy.ca, port, 'exact.wild.test')).toEqual({ code: 0, body: 'exact' });
    // One label only, and not the base name: no certificate, the handshake fails.
    expect((await curl(proxy.ca, port, 'b.a.wild.test')).code).not.toBe(0);
    expect((await curl(proxy.ca, port, 'wild.test')).code).not.toBe(0);

    const { stdout } = await run('sh', ['-c', `openssl s_client -connect 127.0.0.1:${port} -servername z.wild.test </dev/null 2>/dev/null | openssl x509 -noout -ext subjectAltName`]);
    expect(stdout).toContain('DNS:*.wild.test');
    const lineage = await new CertStore(proxy.config.letsencryptDir).read('_wildcard.wild.test');
    expect(lineage!.names).toEqual(['*.wild.test']);
  });

  it('are refused by the admin API of an ACME proxy whose sites would not use dns-01', async () => {
    const proxy = await resources.proxy(table([]), { adminToken: TOKEN, issuer: 'acme', acmeDirectory: 'https://127.0.0.1:9/dir' });
    const refused = await postChange(proxy, { change: { op: 'addSite', site: 'wild', hosts: ['*.example.com'] } });
    expect(refused.status).toBe(400);
    expect(refused.json.error).toMatchObject({ code: 'ERR_WILDCARD_NEEDS_DNS01', message: expect.stringContaining('a CA validates wildcards only over dns-01') });
    const accepted = await postChange(proxy, { change: { op: 'addSite', site: 'wild', hosts: ['*.example.com'], challenge: 'dns-01' } });
    expect(accepted.status).toBe(200);
    expect((await postChange(proxy, { change: { op: 'addSite', site: 'suffix', hosts: ['*.co.uk'], challenge: 'dns-01' } })).json.error.message).toContain('"co.uk" is a public suffix');
  });

  it('are refused by deploy in file mode when the proxies\' environment says ACME without dns-01', async () => {
    const dir = await tempDir();
    resources.defer(() => dir.close());
    const routes = path.join(dir.path, 'routes.json');
    const acme = { PROXIMATION_ISSUER: 'acme', PROXIMATION_ACME_CHALLENGE: 'http-01' };
    const refused = await deploy(['site', 'add', 'wild', '--host', '*.example.com', '--routes', routes], acme);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toContain('a CA validates wildcards only over dns-01, but the site\'s certificates would be validated over http-01');
    expect((await deploy(['site', 'add', 'wild', '--host', '*.example.com', '--challenge', 'dns-01', '--routes', routes, '--json'], acme)).stdout).toContain('"challenge": "dns-01"');
    // The proxies' default issuer is the local CA, which needs no challenge.
    expect((await deploy(['site', 'add', 'local', '--host', '*.local.example.com', '--routes', routes])).code).toBe(0);
  });
});
