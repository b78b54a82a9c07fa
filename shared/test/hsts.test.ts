import { describe, expect, it } from 'vitest';
import { PRELOAD_MIN_MAX_AGE, hstsHeaderValue, hstsProblems, normalizeHsts, sameHsts } from '../src/hsts.js';

describe('HSTS policy', () => {
  it('renders the header value with the flags that are on', () => {
    expect(hstsHeaderValue({ maxAge: 0 })).toBe('max-age=0');
    expect(hstsHeaderValue({ maxAge: 300, includeSubDomains: false, preload: false })).toBe('max-age=300');
    expect(hstsHeaderValue({ maxAge: PRELOAD_MIN_MAX_AGE, includeSubDomains: true, preload: true })).toBe('max-age=31536000; includeSubDomains; preload');
  });

  it('accepts preload from one year up with includeSubDomains, and every whole maxAge without it', () => {
    expect(hstsProblems({ maxAge: PRELOAD_MIN_MAX_AGE, includeSubDomains: true, preload: true })).toEqual([]);
    expect(hstsProblems({ maxAge: 0 })).toEqual([]);
    expect(hstsProblems({ maxAge: 1, includeSubDomains: true })).toEqual([]);
  });

  it('names each broken rule with its field', () => {
    expect(hstsProblems({ maxAge: Number.NaN, preload: true }).map((p) => p.field)).toEqual(['maxAge', 'preload']);
    expect(hstsProblems({ maxAge: 60, preload: true }).map((p) => p.field)).toEqual(['preload', 'preload']);
  });

  it('normalises to the flags that are on, and throws ERR_INVALID_HSTS with every problem', () => {
    expect(normalizeHsts({ maxAge: 60, includeSubDomains: false, preload: false }, 'dev')).toEqual({ maxAge: 60 });
    expect(() => normalizeHsts({ maxAge: -1, preload: true }, 'dev')).toThrow(
      expect.objectContaining({
        code: 'ERR_INVALID_HSTS',
        message: expect.stringMatching(/^Invalid HSTS setting for site "dev": maxAge must be .*; preload requires includeSubDomains .*; preload requires a maxAge of at least 31536000/),
      }),
    );
  });

  it('compares policies by the header they send', () => {
    expect(sameHsts({ maxAge: 60 }, { maxAge: 60, includeSubDomains: false })).toBe(true);
    expect(sameHsts({ maxAge: 60 }, { maxAge: 61 })).toBe(false);
    expect(sameHsts({ maxAge: 60 }, { maxAge: 60, includeSubDomains: true })).toBe(false);
    expect(sameHsts(undefined, undefined)).toBe(true);
    expect(sameHsts(undefined, { maxAge: 0 })).toBe(false);
  });
});
