import { describe, expect, it } from 'vitest';
import { formatDuration, parseDuration } from '../src/duration.js';

describe('parseDuration', () => {
  it.each([
    ['500ms', 500],
    ['2s', 2_000],
    ['1.5s', 1_500],
    ['1m', 60_000],
    ['1h', 3_600_000],
    ['1d', 86_400_000],
    ['1w', 604_800_000],
    ['1y', 31_536_000_000],
    ['1y1d', 31_622_400_000],
    ['1m30s', 90_000],
    ['0ms', 0],
    [' 2s ', 2_000],
    ['0.5ms', 1],
  ])('%j → %d ms', (text, ms) => {
    expect(parseDuration(text, '--timeout')).toBe(ms);
  });

  it('rejects a bare number and tells the user to add a unit', () => {
    expect(() => parseDuration('30', 'PROXIMATION_TIMEOUT')).toThrow(
      expect.objectContaining({ code: 'ERR_INVALID_DURATION', message: expect.stringMatching(/"30" for PROXIMATION_TIMEOUT: add a unit, for example "30ms" or "30s"/) }),
    );
  });

  it.each(['', 's', '-1s', '1x', '1 s', '1.s', '2sec', 'Infinity', '1e3ms'])('rejects %j naming field and value', (text) => {
    expect(() => parseDuration(text, '--timeout')).toThrow(
      expect.objectContaining({ code: 'ERR_INVALID_DURATION', message: expect.stringContaining(`${JSON.stringify(text)} for --timeout`) }),
    );
  });

  it('rejects durations beyond the safe integer range', () => {
    expect(() => parseDuration('999999999999999d', '--timeout')).toThrow(/too large/);
  });
});

describe('formatDuration', () => {
  it.each([
    [0, '0ms'],
    [500, '500ms'],
    [2_000, '2s'],
    [90_000, '1m30s'],
    [1_500, '1s500ms'],
    [3_600_000, '1h'],
    [86_400_000 + 1, '1d1ms'],
    [31_536_000_000 + 8 * 86_400_000, '1y1w1d'],
    [3.4, '3ms'],
  ])('%d ms → %s', (ms, text) => {
    expect(formatDuration(ms)).toBe(text);
  });

  it('round-trips through parseDuration', () => {
    for (const ms of [1, 999, 1_000, 61_001, 93_784_005]) {
      expect(parseDuration(formatDuration(ms), 'x')).toBe(ms);
    }
  });

  it.each([-1, Number.NaN, Number.POSITIVE_INFINITY])('rejects %d', (ms) => {
    expect(() => formatDuration(ms)).toThrow(expect.objectContaining({ code: 'ERR_INVALID_DURATION' }));
  });
});
