import { describe, expect, it } from 'vitest';
import { httpsRequest, managed, table } from '../support/fixtures.js';

const resources = managed();

// Checks go through the upstream's own pool, HTTP/1.1 or HTTP/2.
describe.each(['http', 'h2c'] as const)('over %s', (protocol) => {
  it('takes an upstream out of rotation while its health check fails and brings it back when it passes', async () => {
    let sick = false;
    const a = await resources.answeringUpstream(protocol, (path) => [path === '/healthz' && sick ? 500 : 200, 'a']);
    const b = await resources.answeringUpstream(protocol, () => [200, 'b']);
    const proxy = await resources.proxy(table([{ name: 'app', hosts: ['app.test'], upstreams: [a.origin, b.origin] }]), {
      healthIntervalMs: '50ms',
      healthPath: '/healthz',
    });
    const bodies = async (n: number): Promise<string[]> => {
      const out: string[] = [];
      for (let i = 0; i < n; i++) out.push((await httpsRequest(proxy, 'app.test')).body);
      return out;
    };
    expect(new Set(await bodies(4))).toEqual(new Set(['a', 'b']));

    sick = true;
    const down = await proxy.waitForLog((l) => l.part === 'health' && l.msg === 'upstream failed its health checks; out of rotation');
    expect(down).toMatchObject({ upstream: a.origin, problem: 'GET /healthz answered 500' });
    expect(await bodies(4)).toEqual(['b', 'b', 'b', 'b']);

    sick = false;
    await proxy.waitForLog((l) => l.part === 'health' && l.msg === 'upstream passed its health check; back in rotation');
    expect(new Set(await bodies(4))).toEqual(new Set(['a', 'b']));
  });
});
