/**
 * Reading a proxy's `GET /metrics` in tests: the text exposition parsed into samples, one sample looked
 * up by name and labels, and scraping until a condition holds (counters move when an exchange ends,
 * which can be just after the client has its answer).
 */
import { expect } from 'vitest';
import { httpRequest, type Proxy, type Response } from './fixtures.js';

export interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

/** The samples of a text exposition (one `name{labels} value` per line; comments skipped). */
function parseExposition(text: string): Sample[] {
  const samples: Sample[] = [];
  for (const line of text.split('\n')) {
    const match = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (match === null) continue;
    const labels: Record<string, string> = {};
    for (const [, key, value] of (match[2] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) labels[key!] = value!;
    samples.push({ name: match[1]!, labels, value: Number(match[3]) });
  }
  return samples;
}

export function value(samples: Sample[], name: string, labels: Record<string, string> = {}): number | undefined {
  const found = samples.filter((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v));
  expect(found.length, `${name} ${JSON.stringify(labels)} matched ${found.length} samples`).toBeLessThanOrEqual(1);
  return found[0]?.value;
}

export async function scrape(p: Proxy): Promise<Response & { samples: Sample[] }> {
  const res = await httpRequest(p.server.admin.port, '127.0.0.1', '/metrics');
  return { ...res, samples: parseExposition(res.body) };
}

/** Scrapes until `ready` holds: the counters are updated when an exchange ends, which can be just after the client has its answer. */
export async function scrapeUntil(p: Proxy, ready: (samples: Sample[]) => boolean, timeoutMs = 3000): Promise<Sample[]> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const { samples } = await scrape(p);
    if (ready(samples) || Date.now() > deadline) return samples;
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}
