import net from 'node:net';
import { expect, it } from 'vitest';
import { httpsRequest, managed, table } from '../support/fixtures.js';

const resources = managed();

async function closedPort(): Promise<number> {
  return new Promise((resolve) => {
    const s = net.createServer().listen(0, '127.0.0.1', () => {
      const { port } = s.address() as net.AddressInfo;
      s.close(() => resolve(port));
    });
  });
}

it('spreads requests round-robin over the active version\'s upstreams', async () => {
  const a = await resources.upstream((_req, res) => res.end('a'));
  const b = await resources.upstream((_req, res) => res.end('b'));
  const proxy = await resources.proxy(table([{ name: 'app', hosts: ['app.test'], upstreams: [a.origin, b.origin] }]));
  const bodies: string[] = [];
  for (let i = 0; i < 6; i++) bodies.push((await httpsRequest(proxy, 'app.test')).body);
  expect(bodies.filter((x) => x === 'a')).toHaveLength(3);
  expect(bodies.filter((x) => x === 'b')).toHaveLength(3);
});

it('takes an upstream that refuses connections out of rotation after one failure', async () => {
  const live = await resources.upstream((_req, res) => res.end('live'));
  const dead = `http://127.0.0.1:${await closedPort()}`;
  const proxy = await resources.proxy(table([{ name: 'app', hosts: ['app.test'], upstreams: [dead, live.origin] }]));
  const statuses: number[] = [];
  for (let i = 0; i < 8; i++) statuses.push((await httpsRequest(proxy, 'app.test')).status);
  // The first pick is the dead one (502); from then on it is ejected and only the live one serves.
  expect(statuses[0]).toBe(502);
  expect(statuses.slice(1)).toEqual(Array(7).fill(200));
});
