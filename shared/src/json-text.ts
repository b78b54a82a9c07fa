/**
 * Parsing JSON files that people edit by hand. `parseJsonText` returns what JSON.parse returns (a leading
 * byte-order mark is ignored) or throws ProximationError with the caller's `code`, naming `source` and the
 * line and column of the first syntax error. V8's own messages give no position for some errors
 * ("Unexpected token") and quote the whole input, so the error is located by a small scanner instead.
 *
 * Nesting is bounded (`MAX_JSON_DEPTH` arrays and objects inside each other) before anything else: a
 * body of 30,000 `[` would otherwise overflow the stack of every recursive walk after JSON.parse (the
 * syntax scanner, schema validation, error messages) with a RangeError instead of a clear answer.
 * Every document proximation reads nests less than 10 deep.
 */
import { ProximationError } from './errors.js';

export const MAX_JSON_DEPTH = 64;

export function parseJsonText(text: string, source: string, code: string): unknown {
  const body = text.startsWith('\uFEFF') ? text.slice(1) : text;
  const tooDeep = tooDeepAt(body);
  if (tooDeep !== -1) {
    const { line, column } = position(body, tooDeep);
    throw new ProximationError(
      code,
      `${source} nests arrays and objects more than ${MAX_JSON_DEPTH} levels deep (at line ${line}, column ${column}); no valid document does.`,
    );
  }
  try {
    return JSON.parse(body);
  } catch (err) {
    const { offset, problem } = locateSyntaxError(body) ?? { offset: 0, problem: (err as Error).message };
    const { line, column } = position(body, offset);
    throw new ProximationError(
      code,
      `${source} is not valid JSON: ${problem} at line ${line}, column ${column}. ` +
        'Fix the syntax there (JSON allows no comments, trailing commas or single quotes).',
      { cause: err },
    );
  }
}

function position(text: string, offset: number): { line: number; column: number } {
  const before = text.slice(0, offset);
  return { line: before.split('\n').length, column: offset - before.lastIndexOf('\n') };
}

/** The offset of the first `[` or `{` that opens level MAX_JSON_DEPTH + 1 outside strings, or -1. */
function tooDeepAt(text: string): number {
  let depth = 0;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (inString) {
      if (c === 92 /* backslash */) i++;
      else if (c === 34 /* " */) inString = false;
    } else if (c === 34) {
      inString = true;
    } else if (c === 91 /* [ */ || c === 123 /* { */) {
      if (++depth > MAX_JSON_DEPTH) return i;
    } else if (c === 93 /* ] */ || c === 125 /* } */) {
      depth--;
    }
  }
  return -1;
}

class SyntaxProblem {
  constructor(
    readonly offset: number,
    readonly problem: string,
  ) {}
}

const NUMBER = /-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?/y;
const ESCAPE = /\\(?:["\\/bfnrt]|u[0-9a-fA-F]{4})/y;

/** The first syntax error in `text`, or undefined if it is valid JSON. */
function locateSyntaxError(text: string): SyntaxProblem | undefined {
  let i = 0;
  const fail = (problem: string): never => {
    throw new SyntaxProblem(i, problem);
  };
  const unexpected = (expected: string): never => {
    const found = text[i];
    return fail(found === undefined ? `unexpected end of file, expected ${expected}` : `expected ${expected} but found ${JSON.stringify(found)}`);
  };
  const skipWhitespace = (): void => {
    while (i < text.length && ' \t\n\r'.includes(text.charAt(i))) i++;
  };
  const string = (): void => {
    i++;
    for (;;) {
      const c = text[i];
      if (c === undefined) return fail('unterminated string');
      if (c === '"') break;
      if (c === '\\') {
        ESCAPE.lastIndex = i;
        if (!ESCAPE.test(text)) fail('invalid escape sequence in string');
        i = ESCAPE.lastIndex;
      } else if (c < ' ') {
        fail('control character (such as a line break) inside a string');
      } else {
        i++;
      }
    }
    i++;
  };
  const sequence = (close: string, item: () => void): void => {
    i++;
    skipWhitespace();
    if (text[i] === close) {
      i++;
      return;
    }
    for (;;) {
      item();
      skipWhitespace();
      if (text[i] === close) break;
      if (text[i] !== ',') unexpected(`"," or "${close}"`);
      i++;
      skipWhitespace();
      if (text[i] === close) fail(`trailing comma before "${close}"`);
    }
    i++;
  };
  const value = (): void => {
    skipWhitespace();
    const c = text[i];
    if (c === '{') {
      sequence('}', () => {
        skipWhitespace();
        if (text[i] !== '"') unexpected('a double-quoted property name');
        string();
        skipWhitespace();
        if (text[i] !== ':') unexpected('":"');
        i++;
        value();
      });
    } else if (c === '[') {
      sequence(']', value);
    } else if (c === '"') {
      string();
    } else if (c === '-' || (c !== undefined && c >= '0' && c <= '9')) {
      NUMBER.lastIndex = i;
      if (!NUMBER.test(text)) fail('invalid number');
      i = NUMBER.lastIndex;
    } else {
      const literal = ['true', 'false', 'null'].find((word) => text.startsWith(word, i));
      if (literal === undefined) return unexpected('a value');
      i += literal.length;
    }
  };

  try {
    value();
    skipWhitespace();
    if (i < text.length) fail('unexpected text after the end of the JSON value');
    return undefined;
  } catch (err) {
    if (err instanceof SyntaxProblem) return err;
    throw err;
  }
}
