import fs from 'node:fs/promises';
import { describe, expect, it } from 'vitest';
import { readRoutingTableFile, serializeRoutingTable } from '@proximation/shared';
import { httpsRequest, managed, table, writeRoutes, type Proxy } from '../support/fixtures.js';
import { waitUntil } from '../support/process.js';
import { TOKEN, apiRequest, postChange } from './api-request.js';

const the = managed();

/** Upstream answering "<name>" to everything, and the requests' user agents. */
async function namedUpstream(name: string, status = 200) {
  const agents: (string | undefined)[] = [];
  const upstream = await the.upstream((req, res) => {
    agents.push(req.headers['user-agent']);
    res.writeHead(status, { 'content-type': 'text/plain' });
    res.end(name);
  });
  return { ...upstream, agents };
}

/** A proxy with the admin API on, serving site dev (dev.example.com) with version v1 on an upstream answering "v1". */
async function devProxy(settings: Parameters<typeof the.proxy>[1] = {}): Promise<{ proxy: Proxy; v1: Awaited<ReturnType<typeof namedUpstream>> }> {
  const v1 = await namedUpstream('v1');
  const proxy = await the.proxy(table([{ name: 'dev', hosts: ['dev.example.com'], upstreams: [v1.origin] }]), { adminToken: TOKEN, ...settings });
  return { proxy, v1 };
}

const register = (version: string, upstream: string, activate = true) => ({ op: 'registerVersion', site: 'dev', version, upstreams: [upstream], activate });

describe('admin API access', () => {
  it('is off without a configured token, saying how to turn it on, while /healthz stays open', async () => {
    const proxy = await the.proxy(table([]));
    expect((await apiRequest(proxy, 'GET', '/healthz', { token: null })).status).toBe(200);
    for (const token of [null, TOKEN]) {
      const answer = await apiRequest(proxy, 'GET', '/api/routes', { token });
      expect(answer.status).toBe(403);
      expect(answer.json.error.code).toBe('ERR_ADMIN_API_DISABLED');
      expect(answer.json.error.message).toContain('PROXIMATION_ADMIN_TOKEN_FILE');
    }
    expect((await postChange(proxy, { change: { op: 'removeSite', site: 'dev' } })).status).toBe(403);
  });

  it('refuses a missing or wrong token with 401 and WWW-Authenticate: Bearer, and never echoes the token', async () => {
    const { proxy } = await devProxy();
    const before = await fs.readFile(proxy.config.routesPath, 'utf8');
    const missing = await apiRequest(proxy, 'GET', '/api/routes', { token: null });
    expect(missing.status).toBe(401);
    expect(missing.headers['www-authenticate']).toBe('Bearer realm="proximation admin"');
    expect(missing.json.error).toMatchObject({ code: 'ERR_UNAUTHORIZED', message: expect.stringContaining('carries no admin token') });
    for (const wrong of [`${TOKEN}x`, TOKEN.slice(0, -1), 'short', TOKEN.toUpperCase()]) {
      const answer = await postChange(proxy, { change: { op: 'removeSite', site: 'dev' } }, { authorization: `Bearer ${wrong}` });
      expect(answer.status).toBe(401);
      expect(answer.headers['www-authenticate']).toBe('Bearer realm="proximation admin", error="invalid_token"');
      expect(answer.json.error.code).toBe('ERR_UNAUTHORIZED');
      expect(answer.text).not.toContain(wrong);
    }
    expect((await apiRequest(proxy, 'GET', '/api/routes', { headers: { authorization: `Basic ${TOKEN}` } })).status).toBe(401);
    expect(await fs.readFile(proxy.config.routesPath, 'utf8')).toBe(before);
    expect(JSON.stringify(proxy.logs)).not.toContain(TOKEN);
  });

  it('answers 404 for an unknown endpoint and 405 for a wrong method, once authorised', async () => {
    const { proxy } = await devProxy();
    expect((await apiRequest(proxy, 'GET', '/api/nothing', { token: null })).status).toBe(401);
    const unknown = await apiRequest(proxy, 'GET', '/api/nothing');
    expect(unknown.status).toBe(404);
    expect(unknown.json.error.code).toBe('ERR_NOT_FOUND');
    const wrongMethod = await apiRequest(proxy, 'GET', '/api/routes/changes');
    expect(wrongMethod.status).toBe(405);
    expect(wrongMethod.headers.allow).toBe('POST');
  });
});

describe('GET /api/routes', () => {
  it('answers the stored table with its generation as ETag', async () => {
    const { proxy } = await devProxy();
    const answer = await apiRequest(proxy, 'GET', '/api/routes');
    expect(answer.status).toBe(200);
    expect(answer.headers.etag).toBe('"1"');
    expect(answer.headers['cache-control']).toBe('no-store');
    expect(answer.text).toBe(await fs.readFile(proxy.config.routesPath, 'utf8'));
  });
});

describe('POST /api/routes/changes', () => {
  it('applies a change to the routes file, serves it at once, and logs who changed what', async () => {
    const { proxy } = await devProxy();
    const v2 = await namedUpstream('v2');
    const answer = await postChange(proxy, { change: register('v2', v2.origin) }, { 'user-agent': 'ci-runner/1' });
    expect(answer.status).toBe(200);
    expect(answer.headers.etag).toBe('"2"');
    expect(answer.json).toMatchObject({ changed: true, healthChecked: [], table: { generation: 2, sites: [{ activeVersion: 'v2', history: ['v1'] }] } });
    expect(await readRoutingTableFile(proxy.config.routesPath)).toEqual(answer.json.table);
    // Served by this instance as soon as the answer is out, without waiting for its next poll.
    expect(JSON.parse((await apiRequest(proxy, 'GET', '/healthz')).text).routesGeneration).toBe(2);
    expect((await httpsRequest(proxy, 'dev.example.com')).body).toBe('v2');
    const line = await proxy.waitForLog((l) => l.part === 'admin' && l.msg === 'routing table changed through the admin API');
    expect(line).toMatchObject({ peer: '127.0.0.1', userAgent: 'ci-runner/1', change: register('v2', v2.origin), generationBefore: 1, generation: 2, changed: true });
  });

  it('answers changed: false for a change that changes nothing, writing nothing', async () => {
    const { proxy, v1 } = await devProxy();
    const before = await fs.readFile(proxy.config.routesPath, 'utf8');
    const answer = await postChange(proxy, { change: register('v1', v1.origin) });
    expect(answer.status).toBe(200);
    expect(answer.json).toMatchObject({ changed: false, table: { generation: 1 } });
    expect(await fs.readFile(proxy.config.routesPath, 'utf8')).toBe(before);
  });

  it('applies a change only to the generation If-Match names: 412 with the current ETag otherwise, the table unchanged', async () => {
    const { proxy } = await devProxy();
    const v2 = await namedUpstream('v2');
    const before = await fs.readFile(proxy.config.routesPath, 'utf8');
    for (const ifMatch of ['"0"', '"2"', 'W/"1"', '"0", "7"']) {
      const conflict = await postChange(proxy, { change: register('v2', v2.origin) }, { 'if-match': ifMatch });
      expect(conflict.status).toBe(412);
      expect(conflict.headers.etag).toBe('"1"');
      expect(conflict.json.error).toMatchObject({ code: 'ERR_PRECONDITION_FAILED', message: expect.stringContaining('generation 1') });
    }
    expect(await fs.readFile(proxy.config.routesPath, 'utf8')).toBe(before);
    const matching = await postChange(proxy, { change: register('v2', v2.origin) }, { 'if-match': '"0", "1"' });
    expect(matching.status).toBe(200);
    expect(matching.headers.etag).toBe('"2"');
    expect((await postChange(proxy, { change: { op: 'rollback', site: 'dev' } }, { 'if-match': '*' })).status).toBe(200);
  });

  it.each([
    [{ change: { op: 'registerVersion', version: 'v2', upstreams: ['http://a'], activate: true } }, 'change.site: required field is missing'],
    [{ change: { op: 'rename', site: 'dev' } }, 'change.op: must be one of addSite, removeSite'],
    [{ change: { op: 'rollback', site: 'dev', force: true } }, 'change.force: unknown field'],
    [{ change: { op: 'pruneVersions', site: 'dev', keep: -1 } }, 'change.keep: must be a non-negative integer (found -1)'],
    [{ change: { op: 'activateVersion', site: 'dev', version: 'v1' }, healthCheck: { path: 'healthz', timeoutMs: 1000 } }, 'healthCheck.path: must be a path starting with a single "/"'],
    [{ change: { op: 'activateVersion', site: 'dev', version: 'v1', guard: { activeBefore: 3 } } }, 'change.guard.activeBefore: expected a string (found 3)'],
    [[], 'top level: expected an object'],
  ])('answers 400 naming the field for %j, changing nothing', async (body, message) => {
    const { proxy } = await devProxy();
    const before = await fs.readFile(proxy.config.routesPath, 'utf8');
    const answer = await postChange(proxy, body);
    expect(answer.status).toBe(400);
    expect(answer.json.error.code).toBe('ERR_INVALID_REQUEST');
    expect(answer.json.error.message).toContain(message);
    expect(await fs.readFile(proxy.config.routesPath, 'utf8')).toBe(before);
    expect(proxy.logs.find((l) => l.msg === 'change request through the admin API refused')).toMatchObject({ part: 'admin', code: 'ERR_INVALID_REQUEST' });
  });

  it('sets HSTS with setHsts, served at once, and answers 400 ERR_INVALID_HSTS for a policy that breaks its rules', async () => {
    const { proxy } = await devProxy();
    const before = await fs.readFile(proxy.config.routesPath, 'utf8');
    const refused = await postChange(proxy, { change: { op: 'setHsts', site: 'dev', hsts: { maxAge: 86_400, preload: true } } });
    expect(refused.status).toBe(400);
    expect(refused.json.error).toMatchObject({ code: 'ERR_INVALID_HSTS', message: expect.stringContaining('Invalid HSTS setting for site "dev": preload requires includeSubDomains') });
    expect(await fs.readFile(proxy.config.routesPath, 'utf8')).toBe(before);
    const answer = await postChange(proxy, { change: { op: 'setHsts', site: 'dev', hsts: { maxAge: 86_400, includeSubDomains: true } } });
    expect(answer.status).toBe(200);
    expect(answer.json.table.sites[0].hsts).toEqual({ maxAge: 86_400, includeSubDomains: true });
    expect((await httpsRequest(proxy, 'dev.example.com')).headers['strict-transport-security']).toBe('max-age=86400; includeSubDomains');
  });

  it('answers 400 for malformed JSON with its position, 415 for another content type, 413 for a body over 64 KiB', async () => {
    const { proxy } = await devProxy();
    const malformed = await postChange(proxy, '{"change": {"op": "rollback",}}');
    expect(malformed.status).toBe(400);
    expect(malformed.json.error.message).toMatch(/not valid JSON: .* at line 1, column \d+/);
    const form = await postChange(proxy, '{}', { 'content-type': 'application/x-www-form-urlencoded' });
    expect(form.status).toBe(415);
    expect(form.json.error.code).toBe('ERR_UNSUPPORTED_MEDIA_TYPE');
    const huge = { change: { op: 'addSite', site: 'big', hosts: Array.from({ length: 5000 }, (_, i) => `host-${i}.example.com`) } };
    const tooLarge = await postChange(proxy, huge);
    expect(tooLarge.status).toBe(413);
    expect(tooLarge.json.error).toMatchObject({ code: 'ERR_BODY_TOO_LARGE', message: expect.stringContaining('65536 bytes') });
    // Streamed without a Content-Length, it is cut off at the limit too.
    const streamed = await postChange(proxy, JSON.stringify(huge), { 'content-length': undefined, 'transfer-encoding': 'chunked' });
    expect(streamed.status).toBe(413);
    expect((await readRoutingTableFile(proxy.config.routesPath)).generation).toBe(1);
  });

  it('refuses restricted upstreams (400) unless the version opts in, and never the proxy\'s own listeners', async () => {
    const { proxy } = await devProxy();
    const metadata = await postChange(proxy, { change: register('v2', 'http://169.254.169.254') });
    expect(metadata.status).toBe(400);
    expect(metadata.json.error).toMatchObject({ code: 'ERR_RESTRICTED_UPSTREAM', message: expect.stringContaining('allowRestrictedUpstreams') });
    const own = [`http://127.0.0.1:${proxy.server.admin.port}`, `http://localhost:${proxy.server.https.port}`, `https://[::1]:${proxy.server.admin.port}`, `http://0.0.0.0:${proxy.server.admin.port}`];
    for (const target of own) {
      const answer = await postChange(proxy, { change: { ...register('v3', target), allowRestrictedUpstreams: true } });
      expect(answer.status, target).toBe(400);
      expect(answer.json.error).toMatchObject({ code: 'ERR_RESTRICTED_UPSTREAM', message: expect.stringContaining("this proxy's own listeners") });
    }
    expect((await readRoutingTableFile(proxy.config.routesPath)).generation).toBe(1);
    const optedIn = await postChange(proxy, { change: { ...register('v4', 'http://169.254.170.2', false), allowRestrictedUpstreams: true } });
    expect(optedIn.status).toBe(200);
    expect(optedIn.json.table.sites[0].versions[1]).toMatchObject({ name: 'v4', upstreams: ['http://169.254.170.2'], allowRestrictedUpstreams: true });
  });

  it('keeps serving the last good table when the file names the proxy\'s own admin port as an upstream', async () => {
    const { proxy } = await devProxy();
    const bad = table([{ name: 'dev', hosts: ['dev.example.com'], upstreams: [`http://127.0.0.1:${proxy.server.admin.port}`], version: 'loop' }], 7);
    await writeRoutes(proxy.config.routesPath, bad);
    const line = await proxy.waitForLog((l) => typeof l.msg === 'string' && l.msg.startsWith('routing table rejected; still serving the last good one (generation 1)'));
    expect(line.err).toContain("dev/loop (sites[0].versions[0].upstreams[0])");
    expect((await httpsRequest(proxy, 'dev.example.com')).body).toBe('v1');
  });

  it('answers GET /api/routes with the table it serves when the file is broken, and the error when it never had a valid one', async () => {
    const { proxy } = await devProxy();
    const fromFile = await apiRequest(proxy, 'GET', '/api/routes');
    expect(fromFile.headers['proximation-routes-source']).toBe('file');
    await writeRoutes(proxy.config.routesPath, '{ "broken": ');
    await proxy.waitForLog((l) => typeof l.msg === 'string' && l.msg.startsWith('routing table rejected'));
    const fromMemory = await apiRequest(proxy, 'GET', '/api/routes');
    expect(fromMemory.status).toBe(200);
    expect(fromMemory.headers['proximation-routes-source']).toBe('memory');
    expect(fromMemory.headers.etag).toBe('"1"');
    expect(fromMemory.text).toBe(fromFile.text);

    const neverValid = await the.proxy('{ "broken": ', { adminToken: TOKEN });
    const answer = await apiRequest(neverValid, 'GET', '/api/routes');
    expect(answer.status).toBe(500);
    expect(answer.json.error.code).toBe('ERR_ROUTES_INVALID');
  });

  it('answers 400, not 500, to a body nested 30,000 levels deep', async () => {
    const { proxy } = await devProxy();
    const deep = `{"change": {"op": "addSite", "site": "deep", "hosts": ${'['.repeat(30_000)}${']'.repeat(30_000)}}}`;
    const answer = await postChange(proxy, deep);
    expect(answer.status).toBe(400);
    expect(answer.json.error).toMatchObject({ code: 'ERR_INVALID_REQUEST', message: expect.stringContaining('more than 64 levels deep') });
    expect((await readRoutingTableFile(proxy.config.routesPath)).generation).toBe(1);
  });

  it('answers the operation\'s own error with the same code and message as file mode, and a status that fits', async () => {
    const { proxy } = await devProxy();
    const unknownSite = await postChange(proxy, { change: { op: 'rollback', site: 'stage' } });
    expect(unknownSite.status).toBe(404);
    expect(unknownSite.json.error).toEqual({ code: 'ERR_UNKNOWN_SITE', message: 'Unknown site "stage": known sites: dev.' });
    const active = await postChange(proxy, { change: { op: 'removeVersion', site: 'dev', version: 'v1' } });
    expect(active.status).toBe(409);
    expect(active.json.error.code).toBe('ERR_VERSION_ACTIVE');
    const badUpstream = await postChange(proxy, { change: register('v2', 'ftp://x') });
    expect(badUpstream.status).toBe(400);
    expect(badUpstream.json.error.code).toBe('ERR_INVALID_UPSTREAM');
    const address = await postChange(proxy, { change: { op: 'addSite', site: 'ip', hosts: ['203.0.113.9'] } });
    expect(address.status).toBe(400);
    expect(address.json.error).toMatchObject({ code: 'ERR_INVALID_HOSTNAME', message: expect.stringContaining('"203.0.113.9" in the hosts of site "ip": it is an IP address') });
    const checkedRollback = await postChange(proxy, { change: { op: 'rollback', site: 'dev' }, healthCheck: { path: '/', timeoutMs: 1000 } });
    expect(checkedRollback.status).toBe(400);
    expect(checkedRollback.json.error.code).toBe('ERR_INVALID_ARGUMENT');
  });
});

describe('POST /api/routes/changes with a health check', () => {
  it('checks the upstreams from the proxy before activating', async () => {
    const { proxy } = await devProxy();
    const v2 = await namedUpstream('v2');
    const answer = await postChange(proxy, { change: register('v2', v2.origin), healthCheck: { path: '/healthz', timeoutMs: 2000 } });
    expect(answer.status).toBe(200);
    expect(answer.json).toMatchObject({ changed: true, healthChecked: [v2.origin], table: { sites: [{ activeVersion: 'v2' }] } });
    expect(v2.agents[0]).toBe('proximation health check (admin API)');
    expect((await httpsRequest(proxy, 'dev.example.com')).body).toBe('v2');
  });

  it('answers 422 with each upstream\'s result when the check fails, and changes nothing', async () => {
    const { proxy } = await devProxy();
    const broken = await namedUpstream('broken', 503);
    const before = await fs.readFile(proxy.config.routesPath, 'utf8');
    const answer = await postChange(proxy, { change: register('v2', broken.origin), healthCheck: { path: '/', timeoutMs: 300 } });
    expect(answer.status).toBe(422);
    expect(answer.json.error.code).toBe('ERR_HEALTH_CHECK_FAILED');
    expect(answer.json.error.message).toContain(`Did not activate dev/v2: the upstream did not pass the health check`);
    expect(answer.json.error.message).toContain(`${broken.origin}: GET / answered 503 Service Unavailable`);
    expect(answer.json.error.message).toContain('Nothing changed: dev/v1 keeps serving.');
    expect(answer.json.error.results).toEqual([{ upstream: broken.origin, healthy: false, attempts: expect.any(Number), outcome: 'answered 503 Service Unavailable' }]);
    expect(await fs.readFile(proxy.config.routesPath, 'utf8')).toBe(before);
    expect((await httpsRequest(proxy, 'dev.example.com')).body).toBe('v1');
  });
});

describe('several instances sharing one directory', () => {
  it('serves a change made through one instance on the other, which only polls, within 2 s', async () => {
    const { proxy: a } = await devProxy({ routesPollMs: '1s' });
    const initial = await fs.readFile(a.config.routesPath, 'utf8');
    const b = await the.proxy(JSON.parse(initial), { adminToken: TOKEN, letsencryptDir: a.config.letsencryptDir, routesPollMs: '1s' });
    expect((await httpsRequest(b, 'dev.example.com')).body).toBe('v1');
    const v2 = await namedUpstream('v2');
    expect((await postChange(a, { change: register('v2', v2.origin) })).status).toBe(200);
    const changedAt = Date.now();
    await waitUntil(async () => (await httpsRequest(b, 'dev.example.com')).body === 'v2', 'instance B to serve v2', 2_000);
    expect(Date.now() - changedAt).toBeLessThan(2_000);
    expect((await apiRequest(b, 'GET', '/api/routes')).text).toBe(serializeRoutingTable(await readRoutingTableFile(a.config.routesPath)));
  });
});
