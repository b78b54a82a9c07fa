import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { fileFleetStorage } from '@proximation/shared';
import { managed, table, tempDir, writeRoutes } from '../support/fixtures.js';
import { runMain } from '../support/process.js';

const resources = managed();

describe('proximation status', () => {
  it('shows the live instances and the sites from the shared directory, leaving stale heartbeats out', async () => {
    const dir = await tempDir();
    resources.defer(() => dir.close());
    const state = path.join(dir.path, 'proximation');
    await writeRoutes(path.join(state, 'routes.json'), table([{ name: 'app', hosts: ['app.test'], upstreams: ['http://10.0.0.5:8080'] }], 7));
    const fleet = fileFleetStorage(state);
    const record = (id: string, writtenAt: Date) => ({
      id, host: 'h', pid: 1, addresses: [], startedAt: writtenAt.toISOString(), writtenAt: writtenAt.toISOString(), periodMs: 5000,
      routesGeneration: 7, workers: 2, certificates: [], traffic: [{ site: 'app', version: 'v1', upstream: 'http://10.0.0.5:8080', inFlight: 3, websockets: 1 }],
    });
    await fleet.putInstance(record('live:1', new Date()));
    await fleet.putInstance(record('dead:2', new Date(Date.now() - 16_000)));
    const env = { PROXIMATION_LETSENCRYPT_DIR: dir.path };
    const json = await runMain(['status', '--json'], env);
    expect(json.code).toBe(0);
    const status = JSON.parse(json.out);
    expect(status.instances.map((i: { id: string }) => i.id)).toEqual(['live:1']);
    expect(status.sites[0].versions[0].members).toEqual([{ upstream: 'http://10.0.0.5:8080', inFlight: 3, websockets: 1 }]);
    const text = await runMain(['status'], env);
    // The age is however long the two commands took: any duration.
    expect(text.out).toMatch(/live:1 {2}up \d[\w.]*, generation 7, 2 workers, 3 in flight, 1 WebSocket/);
    expect(text.out).toContain('http://10.0.0.5:8080  static; 3 in flight, 1 WebSocket');
  });
});
