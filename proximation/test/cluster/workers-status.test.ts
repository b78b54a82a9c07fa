/**
 * The status page's data with workers: `proximation serve --workers 2` as real processes; the primary's
 * per-site history counts the requests every worker answered (it samples the summed metrics).
 */
import path from 'node:path';
import { expect, it } from 'vitest';
import { TOKEN, apiRequest } from '../admin/api-request.js';
import { httpsRequest, managed, table, tempDir, writeRoutes, type Proxy } from '../support/fixtures.js';
import { startServeProcess, waitUntil } from '../support/process.js';

const resources = managed();
const REQUESTS = 20;

it('counts in the primary\'s 15-minute history the requests both workers answered', async () => {
  const upstream = await resources.upstream((_req, res) => res.end('ok'));
  const dir = await tempDir();
  resources.defer(() => dir.close());
  const letsencryptDir = path.join(dir.path, 'le');
  await writeRoutes(path.join(letsencryptDir, 'proximation', 'routes.json'), table([{ name: 'app', hosts: ['app.test'], upstreams: [upstream.origin] }]));
  const proc = await startServeProcess(letsencryptDir, { PROXIMATION_WORKERS: '2', PROXIMATION_ADMIN_TOKEN: TOKEN }, 30_000);
  resources.defer(() => proc.kill());
  // New connections each, so node:cluster / SO_REUSEPORT spread them over the workers.
  for (let i = 0; i < REQUESTS; i += 1) expect((await httpsRequest(proc.target, 'app.test', { agent: false })).status).toBe(200);
  const admin = { server: { admin: { port: proc.ports.admin } } } as Proxy;
  const counted = async (): Promise<number> => {
    const points = (await apiRequest(admin, 'GET', '/api/overview?history=app')).json.history.app as { requests: number }[];
    return points.reduce((sum, point) => sum + point.requests, 0);
  };
  // Samples are 5 s apart; the requests fall into one or two of them.
  await waitUntil(async () => (await counted()) >= REQUESTS, `the history to count ${REQUESTS} requests`, 30_000, 500);
  expect(await counted()).toBe(REQUESTS);
  const servedBy = proc.cli.stdout().split('\n').filter((line) => line.startsWith('{')).map((line) => JSON.parse(line) as { part?: string; worker?: number });
  expect(new Set(servedBy.filter((line) => line.part === 'access').map((line) => line.worker)).size).toBe(2);
}, 90_000);
