/**
 * Durations as people write them in flags, env and config: `500ms`, `2s`, `1.5s`, `1m`, `1h`, `1d`, `1w`
 * (7 days), `1y` (365 days, the year HSTS max-age values count in), and sums of those (`1m30s`, the form
 * `formatDuration` prints, so every formatted duration parses back).
 *
 * `parseDuration` returns whole milliseconds (fractions round to the nearest millisecond) and throws
 * ProximationError `ERR_INVALID_DURATION` naming the field and value; a bare number is rejected because
 * its unit would be a guess. `formatDuration` accepts any finite, non-negative number of milliseconds.
 */
import { ProximationError } from './errors.js';

const UNIT_MS = { y: 31_536_000_000, w: 604_800_000, d: 86_400_000, h: 3_600_000, m: 60_000, s: 1_000, ms: 1 } as const;
type Unit = keyof typeof UNIT_MS;

const WHOLE = /^(?:\d+(?:\.\d+)?(?:ms|s|m|h|d|w|y))+$/;
const PART = /(\d+(?:\.\d+)?)(ms|s|m|h|d|w|y)/g;

export function parseDuration(text: string, field: string): number {
  const fail = (problem: string): never => {
    throw new ProximationError('ERR_INVALID_DURATION', `Invalid duration ${JSON.stringify(text)} for ${field}: ${problem}.`);
  };
  const trimmed = text.trim();
  if (/^\d+(?:\.\d+)?$/.test(trimmed)) {
    fail(`add a unit, for example "${trimmed}ms" or "${trimmed}s"`);
  }
  if (!WHOLE.test(trimmed)) {
    fail('write a non-negative number followed by a unit (ms, s, m, h, d, w, y), for example 500ms, 2s, 1.5s or 1m30s');
  }
  let total = 0;
  for (const [, amount, unit] of trimmed.matchAll(PART)) {
    total += Number(amount) * UNIT_MS[unit as Unit];
  }
  const ms = Math.round(total);
  if (!Number.isSafeInteger(ms)) fail('it is too large');
  return ms;
}

export function formatDuration(ms: number): string {
  if (!Number.isFinite(ms) || ms < 0) {
    throw new ProximationError('ERR_INVALID_DURATION', `Cannot format ${ms} as a duration: expected a finite, non-negative number of milliseconds.`);
  }
  let rest = Math.round(ms);
  if (rest === 0) return '0ms';
  let text = '';
  for (const unit of Object.keys(UNIT_MS) as Unit[]) {
    const count = Math.floor(rest / UNIT_MS[unit]);
    if (count > 0) {
      text += `${count}${unit}`;
      rest -= count * UNIT_MS[unit];
    }
  }
  return text;
}
