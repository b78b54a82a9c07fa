// `proximation serve` on a Redis it cannot use at start: a wrong password or nothing listening. It must
// exit non-zero at once, naming the URL without the password.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startRedisServer } from '../../../shared/test/redis-server.js';
import type { RedisServer } from '../../../shared/test/redis-server.js';
import { freePorts, spawnCli, within } from '../support/process.js';
import { tempDir } from '../support/fixtures.js';

describe('serve on an unusable Redis', () => {
  let server: RedisServer;
  beforeAll(async () => {
    server = await startRedisServer({ password: 'right-password' });
  });
  afterAll(async () => {
    await server?.stop({ final: true });
  });

  async function serve(storage: string): Promise<{ code: number | null; stderr: string }> {
    const dir = await tempDir();
    const [http, https, admin] = (await freePorts(3)) as [number, number, number];
    const cli = spawnCli(['serve'], {
      PROXIMATION_STORAGE: storage,
      PROXIMATION_HTTP_PORT: String(http),
      PROXIMATION_HTTPS_PORT: String(https),
      PROXIMATION_ADMIN_PORT: String(admin),
      PROXIMATION_LISTEN_ADDRESS: '127.0.0.1',
      PROXIMATION_LETSENCRYPT_DIR: dir.path,
      PROXIMATION_LOG_FORMAT: 'json',
    });
    try {
      const { code } = await within(cli.exited, 60_000, 'serve to exit');
      return { code, stderr: cli.stderr() + cli.stdout() };
    } finally {
      cli.child.kill('SIGKILL');
      await dir.close();
    }
  }

  it('exits 1 on a wrong password, naming the URL with the password hidden', async () => {
    const { code, stderr } = await serve(`redis://:wrong-password@127.0.0.1:${server.port}`);
    expect(code).toBe(1);
    expect(stderr).toContain(`Redis at redis://:***@127.0.0.1:${server.port} refused the credentials`);
    expect(stderr).not.toContain('wrong-password');
  });

  it('renew and certs refuse a wrong password the same way', async () => {
    for (const command of ['renew', 'certs']) {
      const cli = spawnCli([command], { PROXIMATION_STORAGE: `redis://:wrong-password@127.0.0.1:${server.port}` });
      const { code } = await within(cli.exited, 60_000, `${command} to exit`);
      expect(code, command).toBe(1);
      expect(cli.stderr(), command).toContain(`Redis at redis://:***@127.0.0.1:${server.port} refused the credentials`);
    }
  });

  it('exits 1 when nothing listens at the URL', async () => {
    const [port] = (await freePorts(1)) as [number];
    const { code, stderr } = await serve(`redis://:secret-pw@127.0.0.1:${port}`);
    expect(code).toBe(1);
    // A free port can be taken between freePorts and the connect, by another test's server or by the
    // connect's own source port (a TCP self-connect): the AUTH then fails (EPIPE, ECONNRESET) instead.
    expect(stderr).toMatch(new RegExp(`Could not reach Redis at redis://:\\*\\*\\*@127\\.0\\.0\\.1:${port}: .*(ECONNREFUSED|EPIPE|ECONNRESET)`));
    expect(stderr).not.toContain('secret-pw');
  });
});
