import { describe, expect, it } from 'vitest';
import { MAX_JSON_DEPTH, parseJsonText } from '../src/json-text.js';

describe('parseJsonText', () => {
  it('parses valid JSON, ignoring a byte-order mark', () => {
    expect(parseJsonText('\uFEFF{"a": [1, "x", null, true]}', 'f.json', 'ERR_X')).toEqual({ a: [1, 'x', null, true] });
  });

  it.each([
    ['{"a":}', 'expected a value but found "}" at line 1, column 6'],
    ['{"a": 1,\n}', 'trailing comma before "}" at line 2, column 1'],
    ['{\n  "a": 1\n  "b": 2\n}', 'expected "," or "}" but found "\\"" at line 3, column 3'],
    ['[1, 2', 'unexpected end of file, expected "," or "]" at line 1, column 6'],
    ['', 'unexpected end of file, expected a value at line 1, column 1'],
    ["{'a': 1}", 'expected a double-quoted property name but found "\'" at line 1, column 2'],
    ['{"a": "x\ny"}', 'control character (such as a line break) inside a string at line 1, column 9'],
    ['{"a": "\\q"}', 'invalid escape sequence in string at line 1, column 8'],
    ['{"a": "x', 'unterminated string at line 1, column 9'],
    ['{"a": -}', 'invalid number at line 1, column 7'],
    ['{"a": tru}', 'expected a value but found "t" at line 1, column 7'],
    ['{} {}', 'unexpected text after the end of the JSON value at line 1, column 4'],
    ['// comment\n{}', 'expected a value but found "/" at line 1, column 1'],
  ])('locates the error in %j', (text, where) => {
    expect(() => parseJsonText(text, '/etc/x/routes.json', 'ERR_ROUTES_INVALID')).toThrow(
      expect.objectContaining({ code: 'ERR_ROUTES_INVALID', message: `/etc/x/routes.json is not valid JSON: ${where}. Fix the syntax there (JSON allows no comments, trailing commas or single quotes).` }),
    );
  });

  it('refuses nesting deeper than MAX_JSON_DEPTH with a ProximationError, valid or not, and counts no brackets inside strings', () => {
    const deep = (n: number) => `${'['.repeat(n)}${']'.repeat(n)}`;
    expect(parseJsonText(deep(MAX_JSON_DEPTH), 'f.json', 'ERR_X')).toBeInstanceOf(Array);
    expect(parseJsonText(`{"a": "${'['.repeat(1000)}"}`, 'f.json', 'ERR_X')).toEqual({ a: '['.repeat(1000) });
    expect(parseJsonText(`["\\\\", ${deep(MAX_JSON_DEPTH - 1)}]`, 'f.json', 'ERR_X')).toHaveLength(2);
    for (const text of [deep(30_000), '['.repeat(30_000), `{"a": ${'{"b": '.repeat(100)}1`]) {
      expect(() => parseJsonText(text, 'body', 'ERR_INVALID_REQUEST')).toThrow(
        expect.objectContaining({ code: 'ERR_INVALID_REQUEST', message: expect.stringMatching(/^body nests arrays and objects more than 64 levels deep \(at line 1, column \d+\)/) }),
      );
    }
  });
});
