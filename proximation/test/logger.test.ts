import { PassThrough } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { createLogger } from '../src/logger.js';

function captured(): { stream: PassThrough; text: () => string } {
  const stream = new PassThrough();
  const chunks: Buffer[] = [];
  stream.on('data', (chunk: Buffer) => chunks.push(chunk));
  return { stream, text: () => Buffer.concat(chunks).toString('utf8') };
}

describe('createLogger', () => {
  it('writes one JSON object per line by default, with the fields and an ISO time', async () => {
    const out = captured();
    const log = createLogger({ level: 'info', format: 'json', destination: out.stream });
    log.child({ part: 'routes' }).info({ generation: 7 }, 'table loaded');
    await new Promise((resolve) => setImmediate(resolve));
    const line = JSON.parse(out.text().trim()) as Record<string, unknown>;
    expect(line).toMatchObject({ level: 30, part: 'routes', generation: 7, msg: 'table loaded' });
    expect(new Date(line.time as string).toISOString()).toBe(line.time);
  });

  it('writes readable lines, not JSON, in the pretty format', async () => {
    const out = captured();
    const log = createLogger({ level: 'info', format: 'pretty', destination: out.stream });
    log.info({ generation: 7 }, 'table loaded');
    await new Promise((resolve) => setImmediate(resolve));
    const text = out.text();
    expect(text).toContain('INFO');
    expect(text).toContain('table loaded');
    expect(text).toContain('generation: 7');
    expect(() => JSON.parse(text)).toThrow();
  });
});
