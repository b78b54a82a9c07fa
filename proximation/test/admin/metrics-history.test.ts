/**
 * The status page's 15-minute history, sampled from a real Metrics registry's exposition: rate, errors
 * and latency quantiles per interval, a restart's counter drop, the bound on points, and vanished sites.
 */
import { expect, it } from 'vitest';
import { MetricsHistory } from '../../src/admin/metrics-history.js';
import { Metrics } from '../../src/metrics.js';

function registry(): Metrics {
  return new Metrics({ connections: () => 0, websockets: () => 0, clientBufferedBytes: () => 0, routesGeneration: () => 1 });
}

it('gives each interval its request rate, error rate and latency p50/p99 per site', async () => {
  const metrics = registry();
  const history = new MetricsHistory({ exposition: () => metrics.exposition() });
  const app = { site: 'app', version: 'v1' };
  await history.sample(0);
  expect(history.history('app')).toEqual([]);
  for (let i = 0; i < 98; i += 1) metrics.exchange(app, 200, 0.004);
  metrics.exchange(app, 502, 2);
  metrics.exchange(app, 503, 2);
  await history.sample(10_000);
  expect(history.history('app')).toEqual([{ at: 10_000, requests: 100, requestsPerSecond: 10, errorsPerSecond: 0.2, p50Seconds: 0.005, p99Seconds: 2.5 }]);
  expect(history.latestRates()).toEqual({ requestsPerSecond: 10, errorsPerSecond: 0.2 });
  await history.sample(20_000);
  expect(history.history('app')[1]).toEqual({ at: 20_000, requests: 0, requestsPerSecond: 0, errorsPerSecond: 0, p50Seconds: null, p99Seconds: null });
});

it('starts a new baseline when counters go down, keeps at most `samples` points, and drops vanished sites', async () => {
  let metrics = registry();
  const history = new MetricsHistory({ exposition: () => metrics.exposition(), samples: 3 });
  const app = { site: 'app', version: 'v1' };
  for (let i = 0; i < 10; i += 1) metrics.exchange(app, 200, 0.01);
  await history.sample(0);
  metrics = registry();
  metrics.exchange(app, 200, 0.01);
  await history.sample(1000);
  expect(history.history('app').map((p) => p.requestsPerSecond)).toEqual([1]);
  for (const at of [2000, 3000, 4000]) await history.sample(at);
  expect(history.history('app').map((p) => p.at)).toEqual([2000, 3000, 4000]);
  metrics = registry();
  await history.sample(5000);
  expect(history.history('app')).toEqual([]);
});
