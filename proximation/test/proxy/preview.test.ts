// Preview hosts end to end on the local CA: <version>.<preview domain> routed to that version, active or
// staged, under one wildcard certificate; the access setting (networks, admin token) judged per request,
// the token never reaching the upstream; and the documented safe deploy with deploy in file mode.
import { execFile } from 'node:child_process';
import fs from 'node:fs/promises';
import type http from 'node:http';
import path from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import type { RoutingTable } from '@proximation/shared';
import { deploy } from '../../../deploy/test/helpers.js';
import { TOKEN } from '../admin/api-request.js';
import { managed, tempDir } from '../support/fixtures.js';
import { waitUntil } from '../support/process.js';

const run = promisify(execFile);
const resources = managed();

async function curl(ca: string, port: number, host: string, headers: string[] = []): Promise<{ status: number; body: string }> {
  const dir = await tempDir();
  resources.defer(() => dir.close());
  const caFile = path.join(dir.path, 'ca.pem');
  await fs.writeFile(caFile, ca);
  const { stdout } = await run('curl', ['-sS', '--cacert', caFile, '--resolve', `${host}:${port}:127.0.0.1`, ...headers.flatMap((h) => ['-H', h]), '-w', '\n%{http_code}', `https://${host}:${port}/`]);
  const nl = stdout.lastIndexOf('\n');
  return { status: Number(stdout.slice(nl + 1)), body: stdout.slice(0, nl) };
}

/** An upstream answering its name, keeping the raw headers of every request it received. */
async function named(name: string): Promise<{ origin: string; received: string[][] }> {
  const received: string[][] = [];
  const upstream = await resources.upstream((req: http.IncomingMessage, res) => {
    received.push(req.rawHeaders);
    res.end(name);
  });
  return { origin: upstream.origin, received };
}

function shopTable(v1: string, v2: string, preview: Record<string, unknown>): RoutingTable {
  return {
    schemaVersion: 1,
    generation: 1,
    sites: [
      {
        name: 'shop',
        hosts: ['shop.test'],
        preview: { domain: 'preview.shop.test', ...preview },
        activeVersion: 'v1',
        history: [],
        versions: [
          { name: 'v1', upstreams: [v1], registeredAt: '2026-11-25T00:00:00.000Z' },
          { name: 'V2', upstreams: [v2], registeredAt: '2026-11-25T01:00:00.000Z' },
        ],
      },
    ],
  } as RoutingTable;
}

describe('preview hosts', () => {
  it('route each version, active or staged, at <version>.<preview domain> under one wildcard certificate', async () => {
    const [v1, v2] = [await named('v1'), await named('v2')];
    const proxy = await resources.proxy(shopTable(v1.origin, v2.origin, {}));
    const port = proxy.server.https.port;
    expect(await curl(proxy.ca, port, 'shop.test')).toEqual({ status: 200, body: 'v1' });
    expect(await curl(proxy.ca, port, 'v1.preview.shop.test')).toEqual({ status: 200, body: 'v1' });
    // Staged, and its name lower-cased.
    expect(await curl(proxy.ca, port, 'v2.preview.shop.test')).toEqual({ status: 200, body: 'v2' });
    expect((await curl(proxy.ca, port, 'v3.preview.shop.test')).status).toBe(404);
    const { stdout } = await run('sh', ['-c', `openssl s_client -connect 127.0.0.1:${port} -servername v2.preview.shop.test </dev/null 2>/dev/null | openssl x509 -noout -ext subjectAltName`]);
    expect(stdout).toContain('DNS:*.preview.shop.test');
  });

  it('admit only the listed networks or the admin token when the site says so, and never pass the token on', async () => {
    const [v1, v2] = [await named('v1'), await named('v2')];
    const proxy = await resources.proxy(shopTable(v1.origin, v2.origin, { networks: ['10.0.0.0/8'], token: true }), { adminToken: TOKEN });
    const port = proxy.server.https.port;
    const refused = await curl(proxy.ca, port, 'v2.preview.shop.test');
    expect(refused.status).toBe(403);
    expect(refused.body).toContain('Proximation-Preview-Token');
    expect(v2.received).toHaveLength(0);
    // The refusal page's bytes are logged as sent (curl's body has the -w newline cut off).
    const logged = await proxy.waitForLog((l) => l.part === 'access' && l.status === 403);
    expect(logged).toMatchObject({ host: `v2.preview.shop.test:${port}`, client: '127.0.0.1', bytes: Buffer.byteLength(refused.body) });
    expect((await curl(proxy.ca, port, 'v2.preview.shop.test', ['Proximation-Preview-Token: wrong-token-0123456789'])).status).toBe(403);
    expect(await curl(proxy.ca, port, 'v2.preview.shop.test', [`Proximation-Preview-Token: ${TOKEN}`])).toEqual({ status: 200, body: 'v2' });
    expect(v2.received).toHaveLength(1);
    expect(v2.received[0]!.map((h) => h.toLowerCase())).not.toContain('proximation-preview-token');
    expect(v2.received[0]!.join('\n')).not.toContain(TOKEN);
    // The site's own hosts stay public.
    expect(await curl(proxy.ca, port, 'shop.test')).toEqual({ status: 200, body: 'v1' });

    const local = await resources.proxy(shopTable(v1.origin, v2.origin, { networks: ['127.0.0.0/8'] }));
    expect(await curl(local.ca, local.server.https.port, 'v2.preview.shop.test')).toEqual({ status: 200, body: 'v2' });
  });

  it('make the documented safe deploy: register --no-activate, smoke-test the preview URL deploy versions prints, activate', async () => {
    const [v1, v2] = [await named('v1'), await named('v2')];
    const empty: RoutingTable = { schemaVersion: 1, generation: 0, sites: [] };
    const proxy = await resources.proxy(empty);
    const port = proxy.server.https.port;
    const routes = proxy.config.routesPath;
    const ok = async (...argv: string[]): Promise<string> => {
      const result = await deploy([...argv, '--routes', routes]);
      expect(result.stderr).toBe('');
      expect(result.code).toBe(0);
      return result.stdout;
    };
    await ok('site', 'add', 'shop', '--host', 'shop.test', '--preview-domain', 'preview.shop.test');
    await ok('register', '--site', 'shop', '--version', 'build-1', '--upstream', v1.origin);
    await ok('register', '--site', 'shop', '--version', 'Build-2', '--upstream', v2.origin, '--no-activate');
    const listing = await ok('versions', '--site', 'shop');
    expect(listing).toMatch(/\* build-1 .* https:\/\/build-1\.preview\.shop\.test\//);
    expect(listing).toMatch(/ {2}Build-2 .* https:\/\/build-2\.preview\.shop\.test\//);
    const previewUrl = /https:\/\/(build-2\.preview\.shop\.test)\//.exec(listing)![1]!;
    // Until the proxy has polled the new table, the preview host is not routed: its handshake fails.
    const notYetRouted = (err: Error): { body: string } => {
      if (!err.message.includes('unrecognized name')) throw err;
      return { body: '' };
    };
    await waitUntil(async () => (await curl(proxy.ca, port, previewUrl).catch(notYetRouted)).body === 'v2', 'the proxy to route the staged version at its preview host');
    expect(await curl(proxy.ca, port, 'shop.test')).toEqual({ status: 200, body: 'v1' });
    await ok('activate', '--site', 'shop', '--version', 'Build-2');
    await waitUntil(async () => (await curl(proxy.ca, port, 'shop.test')).body === 'v2', 'the proxy to route the site to the activated version');

    const bad = await deploy(['register', '--site', 'shop', '--version', 'build_3', '--upstream', v2.origin, '--no-activate', '--routes', routes]);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toContain('cannot have a preview host under preview.shop.test: "build_3" is not a DNS label');
    expect((await deploy(['versions', '--site', 'shop', '--json', '--routes', routes])).stdout).toContain('"previewUrl": "https://build-2.preview.shop.test/"');
    expect(await fs.readFile(routes, 'utf8')).toContain('"preview": {\n        "domain": "preview.shop.test"\n      }');
  });
});
