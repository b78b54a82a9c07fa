import { describe, expect, it } from 'vitest';
import { isProximationError } from '../src/errors.js';
import { hostnameMatchesPattern, normalizeHostname } from '../src/hostname.js';

describe('normalizeHostname', () => {
  it.each([
    ['example.com', 'example.com'],
    ['Example.COM', 'example.com'],
    ['example.com.', 'example.com'],
    ['bücher.example', 'xn--bcher-kva.example'],
    ['BÜCHER.example.', 'xn--bcher-kva.example'],
    ['xn--bcher-kva.example', 'xn--bcher-kva.example'],
    ['a-b.c0', 'a-b.c0'],
    ['localhost', 'localhost'],
    ['0x7f.1', '0x7f.1'],
    [`${'a'.repeat(63)}.com`, `${'a'.repeat(63)}.com`],
    [`${'a.'.repeat(126)}b`, `${'a.'.repeat(126)}b`],
  ])('accepts %j as %j', (input, expected) => {
    expect(normalizeHostname(input)).toBe(expected);
  });

  it.each([
    ['', 'empty'],
    ['.', 'empty label'],
    ['example.com..', '".."'],
    ['a..b', '".."'],
    ['.example.com', 'empty label'],
    ['a/b.com', 'slash'],
    ['a\\b.com', 'slash'],
    ['../etc', 'slash'],
    ['a\u0000b.com', 'control character'],
    ['a\u007fb.com', 'control character'],
    ['a\nb.com', 'control character'],
    ['a b.com', 'whitespace'],
    ['a\u3000b.com', 'whitespace'],
    ['example.com:443', '":"'],
    ['[::1]', 'brackets'],
    ['ex_ample.com', 'characters other than'],
    ['exa$mple.com', 'characters other than'],
    [`${'a'.repeat(64)}.com`, 'longer than 63'],
    [`${'a.'.repeat(127)}b`, 'longer than 253'],
    ['-a.com', 'starts or ends with "-"'],
    ['a-.com', 'starts or ends with "-"'],
    ['*.example.com', 'wildcards'],
    ['*', '"*" is only allowed'],
    ['a.*.com', '"*" is only allowed'],
    ['a*.com', '"*" is only allowed'],
    ['xn--zz.com', 'not valid punycode'],
    ['a\uff0fb.com', 'not a valid internationalised domain name'],
  ])('rejects %j (%s)', (input, rule) => {
    let caught: unknown;
    try {
      normalizeHostname(input, { field: '--host' });
    } catch (err) {
      caught = err;
    }
    expect(isProximationError(caught, 'ERR_INVALID_HOSTNAME')).toBe(true);
    const message = (caught as Error).message;
    expect(message).toContain(JSON.stringify(input));
    expect(message).toContain('--host');
    expect(message).toContain(rule);
  });

  it('accepts a wildcard first label only when allowed, and normalises the rest', () => {
    expect(normalizeHostname('*.Bücher.example', { allowWildcard: true })).toBe('*.xn--bcher-kva.example');
    expect(() => normalizeHostname('*.*.example.com', { allowWildcard: true })).toThrow(/only allowed as the whole first label/);
    expect(() => normalizeHostname('*', { allowWildcard: true })).toThrow(/only allowed as the whole first label/);
    expect(() => normalizeHostname('*x.example.com', { allowWildcard: true })).toThrow(/only allowed as the whole first label/);
  });

  it.each(['127.0.0.1', '10.1', '3232235777', '0x7f.1', '1.2.3.0X7F', 'example.com.5'])('refuses %j as a site host (an IPv4 address to the URL standard)', (input) => {
    expect(normalizeHostname(input)).toBe(input.toLowerCase());
    expect(() => normalizeHostname(input, { refuseAddresses: true, field: '--host' })).toThrow(
      `Invalid hostname ${JSON.stringify(input)} in --host: it is an IP address, and a site is reached by a DNS name`,
    );
  });

  it.each(['localhost', 'a-b.c0', '1.2.3.x4', '123.example.com'])('accepts %j as a site host', (input) => {
    expect(normalizeHostname(input, { refuseAddresses: true })).toBe(input);
  });

  it('names no field when none is given', () => {
    expect(() => normalizeHostname('a..b')).toThrow(/^Invalid hostname "a\.\.b": /);
  });
});

describe('hostnameMatchesPattern', () => {
  it.each([
    ['example.com', 'example.com', true],
    ['example.com', 'www.example.com', false],
    ['*.example.com', 'www.example.com', true],
    ['*.example.com', 'example.com', false],
    ['*.example.com', 'a.b.example.com', false],
    ['*.example.com', 'wwwexample.com', false],
    ['*.example.com', '.example.com', false],
    ['www.example.com', 'example.com', false],
  ])('%s vs %s → %s', (pattern, name, expected) => {
    expect(hostnameMatchesPattern(pattern, name)).toBe(expected);
  });
});
