// HTTP-01 answers from the shared challenge store: tokens placed by another instance, or by certbot's
// manual hooks (as written into renewal files), are served by any proxy on the directory.
import { execFile } from 'node:child_process';
import path from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { ChallengeStore, certbotManualHooks } from '../../src/certs/challenge-store.js';
import { httpRequest, managed, table } from '../support/fixtures.js';

const resources = managed();
const TOKEN = 'evaGxfADs6pSRb2LAv9IZf17Dt3juxGJ-PCt92wr-oA';
const KEY_AUTHORIZATION = `${TOKEN}.9jg46WB3rR_AHD-EBXdN7cBkH1WOu0tA3M9fm21mqTI`;

describe('HTTP-01 from the shared challenge store', () => {
  it('serves a token another instance stored, for any Host, until it is removed', async () => {
    const p = await resources.proxy(table([]));
    const elsewhere = new ChallengeStore(p.config.letsencryptDir);
    await elsewhere.put('http-01', TOKEN, KEY_AUTHORIZATION);
    const res = await httpRequest(p.server.http.port, 'unrouted.test', `/.well-known/acme-challenge/${TOKEN}`);
    expect(res).toMatchObject({ status: 200, body: KEY_AUTHORIZATION });
    expect(res.headers['content-type']).toBe('application/octet-stream');
    await elsewhere.remove('http-01', TOKEN);
    expect((await httpRequest(p.server.http.port, 'unrouted.test', `/.well-known/acme-challenge/${TOKEN}`)).status).toBe(404);
  });

  it('answers 404 to tokens that are not base64url, so no path leaves the store', async () => {
    const p = await resources.proxy(table([]));
    for (const token of ['..%2F..%2Froutes.json', '../../proximation/routes.json', '.', '', 'a.b']) {
      expect((await httpRequest(p.server.http.port, 'a.test', `/.well-known/acme-challenge/${token}`)).status).toBe(404);
    }
    await expect(new ChallengeStore(p.config.letsencryptDir).put('http-01', '../x', 'y')).rejects.toThrow('is not a base64url token');
  });

  it("serves tokens placed by certbot's manual hooks, run by /bin/sh as certbot runs them", async () => {
    const p = await resources.proxy(table([]));
    const hooks = certbotManualHooks(new ChallengeStore(p.config.letsencryptDir));
    const env = { ...process.env, CERTBOT_TOKEN: TOKEN, CERTBOT_VALIDATION: KEY_AUTHORIZATION, CERTBOT_DOMAIN: 'a.test' };
    const sh = promisify(execFile);
    await sh('/bin/sh', ['-c', hooks.authHook], { env });
    expect((await httpRequest(p.server.http.port, 'a.test', `/.well-known/acme-challenge/${TOKEN}`)).body).toBe(KEY_AUTHORIZATION);
    await sh('/bin/sh', ['-c', hooks.cleanupHook], { env });
    expect((await httpRequest(p.server.http.port, 'a.test', `/.well-known/acme-challenge/${TOKEN}`)).status).toBe(404);
    expect(hooks.authHook).toContain(path.join(p.config.letsencryptDir, 'proximation', 'challenges', 'http-01'));
  });
});
