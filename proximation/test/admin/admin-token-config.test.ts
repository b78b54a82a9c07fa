import fs from 'node:fs/promises';
import http from 'node:http';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config.js';
import { managed, tempDir } from '../support/fixtures.js';
import { startServeProcess } from '../support/process.js';
import { TOKEN } from './api-request.js';

const the = managed();

async function tokenFile(content: string): Promise<string> {
  const dir = await tempDir();
  the.defer(dir.close);
  const file = path.join(dir.path, 'admin-token');
  await fs.writeFile(file, content, { mode: 0o600 });
  return file;
}

describe('the admin token setting', () => {
  it('is off by default, taken from PROXIMATION_ADMIN_TOKEN, or read from the file PROXIMATION_ADMIN_TOKEN_FILE names', async () => {
    expect(loadConfig({}, {}).adminToken).toBeUndefined();
    expect(loadConfig({}, { PROXIMATION_ADMIN_TOKEN: TOKEN }).adminToken).toBe(TOKEN);
    expect(loadConfig({}, { PROXIMATION_ADMIN_TOKEN_FILE: await tokenFile(`${TOKEN}\n`) }).adminToken).toBe(TOKEN);
    expect(loadConfig({ 'admin-token-file': await tokenFile(` ${TOKEN} `) }, {}).adminToken).toBe(TOKEN);
  });

  it('refuses both at once, a missing file, and a short or spaced token, without showing the token', async () => {
    const file = await tokenFile(TOKEN);
    expect(() => loadConfig({}, { PROXIMATION_ADMIN_TOKEN: TOKEN, PROXIMATION_ADMIN_TOKEN_FILE: file })).toThrow(
      expect.objectContaining({ code: 'ERR_CONFIG_INVALID', message: expect.stringContaining('are both set: set one') }),
    );
    const missing = path.join(path.dirname(file), 'nope');
    expect(() => loadConfig({}, { PROXIMATION_ADMIN_TOKEN_FILE: missing })).toThrow(`Cannot read the admin token file ${missing} (PROXIMATION_ADMIN_TOKEN_FILE)`);
    for (const bad of ['too-short-token', 'a token with spaces in it']) {
      let message = '';
      try {
        loadConfig({}, { PROXIMATION_ADMIN_TOKEN: bad });
      } catch (err) {
        message = (err as Error).message;
      }
      expect(message).toContain('PROXIMATION_ADMIN_TOKEN is not valid: expected a token of 16 to 4096 printable ASCII characters');
      expect(message).not.toContain(bad);
    }
    expect(() => loadConfig({}, { PROXIMATION_ADMIN_TOKEN_FILE: file.replace(/admin-token$/, '') })).toThrow('Cannot read the admin token file');
  });

  it('turns the API on in a real proxy process started with a token file', async () => {
    const dir = await tempDir();
    the.defer(dir.close);
    const serve = await startServeProcess(path.join(dir.path, 'le'), { PROXIMATION_ADMIN_TOKEN_FILE: await tokenFile(`${TOKEN}\n`) });
    the.defer(serve.kill);
    const get = (token: string) =>
      new Promise<number>((resolve, reject) => {
        http
          .get({ host: '127.0.0.1', port: serve.ports.admin, path: '/api/routes', headers: { authorization: `Bearer ${token}` }, agent: false }, (res) => {
            res.resume();
            resolve(res.statusCode ?? 0);
          })
          .on('error', reject);
      });
    expect(await get(TOKEN)).toBe(200);
    expect(await get(`${TOKEN}-wrong`)).toBe(401);
  });
});
