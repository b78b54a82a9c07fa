/**
 * The upstream response parser frames every response exactly as its contract says however the bytes are
 * cut into reads (whole, byte by byte, in two at every position), and rejects every malformed or ambiguous
 * response with ERR_UPSTREAM_RESPONSE: a response framed differently from the upstream would hand its rest
 * to the next client on the connection.
 */
import { isProximationError } from '@proximation/shared';
import { describe, expect, it } from 'vitest';
import { ResponseParser, type ResponseEvents, type ResponseHeaders } from '../../src/proxy/http1-response-parser.js';

const KEEP = 'end reusable';
const DROP = 'end not reusable';
const CHUNKED = 'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n';

/** What the parser reported: events in order (consecutive body slices as one `body`), each head's headers, the body as latin1. */
interface Outcome {
  trace: string[];
  headers: ResponseHeaders[];
  body: string;
  /** `code: message` of what the parser threw, null if it did not throw. */
  error: string | null;
}

interface Expected {
  trace: string[];
  /** Checked always: '' when omitted, so a response without a body must deliver none. */
  body?: string;
  /** Checked exactly when given. */
  headers?: ResponseHeaders[];
}

interface Options {
  method?: string;
  maxHeadBytes?: number;
  /** Whether the upstream closes its side (`end()`) after the last read. */
  close?: boolean;
}

class Recorder implements ResponseEvents {
  private trace: string[] = [];
  private headers: ResponseHeaders[] = [];
  private slices: Buffer[] = [];

  onHead(status: number, headers: ResponseHeaders): void {
    this.trace.push(`head ${status}`);
    this.headers.push(headers);
  }

  onBody(chunk: Buffer): void {
    if (this.trace.at(-1) !== 'body') this.trace.push('body');
    this.slices.push(chunk);
  }

  onEnd(reusable: boolean): void {
    this.trace.push(reusable ? KEEP : DROP);
  }

  /** What was reported since the last call, and forgets it. */
  take(error: string | null = null): Outcome {
    const outcome = { trace: this.trace, headers: this.headers, body: Buffer.concat(this.slices).toString('latin1'), error };
    this.trace = [];
    this.headers = [];
    this.slices = [];
    return outcome;
  }
}

function bytes(text: string): Buffer {
  return Buffer.from(text, 'latin1');
}

function response(startLine: string, fields: string[], body = ''): string {
  return `${[startLine, ...fields].join('\r\n')}\r\n\r\n${body}`;
}

/** Runs `action`: null if it returned, `code: message` if it threw (any other throw fails the code check). */
function attempt(action: () => void): string | null {
  try {
    action();
    return null;
  } catch (err) {
    return isProximationError(err) ? `${err.code}: ${err.message}` : `not a ProximationError: ${String(err)}`;
  }
}

/** A fresh parser expecting a response to `method`, fed `pieces` (one `execute` each). */
function feed(pieces: Buffer[], { method = 'GET', maxHeadBytes, close = false }: Options = {}): Outcome {
  const recorder = new Recorder();
  const parser = new ResponseParser(recorder, maxHeadBytes);
  parser.begin(method);
  const error = attempt(() => {
    for (const piece of pieces) parser.execute(piece);
    if (close) parser.end();
  });
  return recorder.take(error);
}

/**
 * The ways `input` may arrive: whole, byte by byte, and in two reads cut at every position before
 * `cutsBefore` (bytes from there on always arrive together; byte by byte only when that is the end).
 */
function readsOf(input: Buffer, cutsBefore = input.length): Array<[string, Buffer[]]> {
  const reads: Array<[string, Buffer[]]> = [['whole', [input]]];
  if (cutsBefore === input.length && input.length > 1) {
    reads.push(['byte by byte', Array.from(input, (_, i) => input.subarray(i, i + 1))]);
  }
  for (let cut = 1; cut < cutsBefore; cut++) reads.push([`cut at ${cut}`, [input.subarray(0, cut), input.subarray(cut)]]);
  return reads;
}

function expectFramed(input: string, expected: Expected, options: Options = {}, cutsBefore?: number): void {
  const { trace, body = '', headers } = expected;
  for (const [reads, pieces] of readsOf(bytes(input), cutsBefore)) {
    const outcome = feed(pieces, options);
    const seen = { trace: outcome.trace, body: outcome.body, error: outcome.error, ...(headers && { headers: outcome.headers }) };
    expect(seen, reads).toEqual({ trace, body, error: null, ...(headers && { headers }) });
  }
}

/** However `input` arrives, the parser throws ERR_UPSTREAM_RESPONSE saying `mentions`, and never ends a response. */
function expectRejected(input: string, mentions: RegExp, options: Options = {}, code = 'ERR_UPSTREAM_RESPONSE'): void {
  for (const [reads, pieces] of readsOf(bytes(input))) {
    const outcome = feed(pieces, options);
    const error = outcome.error ?? `nothing thrown, events ${JSON.stringify(outcome.trace)}`;
    expect(error, reads).toMatch(new RegExp(`^${code}: `));
    expect(error, reads).toMatch(mentions);
    expect(outcome.trace.filter((event) => event.startsWith('end')), reads).toEqual([]);
  }
}

/** A head of exactly `length` bytes (status line, one padding header, empty line). */
function headOfLength(length: number): string {
  const fixed = response('HTTP/1.1 204 No Content', ['X: ']).length;
  return response('HTTP/1.1 204 No Content', [`X: ${'a'.repeat(length - fixed)}`]);
}

/** A chunked body whose first chunk-size line (CRLF included) is exactly `length` bytes. */
function chunkLineOfLength(length: number): string {
  return `${CHUNKED}5;x=${'a'.repeat(length - '5;x=\r\n'.length)}\r\nhello\r\n0\r\n\r\n`;
}

describe('Content-Length bodies', () => {
  it.each([
    { name: 'an empty body', input: response('HTTP/1.1 200 OK', ['Content-Length: 0']), trace: ['head 200', KEEP], body: '' },
    { name: 'a small body', input: response('HTTP/1.1 200 OK', ['Content-Length: 5'], 'hello'), trace: ['head 200', 'body', KEEP], body: 'hello' },
    {
      name: 'a body that looks like a response',
      input: response('HTTP/1.1 200 OK', ['Content-Length: 38'], 'HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n'),
      trace: ['head 200', 'body', KEEP],
      body: 'HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n',
    },
    { name: 'leading zeros', input: response('HTTP/1.1 200 OK', ['Content-Length: 005'], 'hello'), trace: ['head 200', 'body', KEEP], body: 'hello' },
    { name: 'a repeated equal value in a list', input: response('HTTP/1.1 200 OK', ['Content-Length: 5, 5'], 'hello'), trace: ['head 200', 'body', KEEP], body: 'hello' },
    {
      name: 'two fields with equal values',
      input: response('HTTP/1.1 200 OK', ['Content-Length: 5', 'Content-Length: 5'], 'hello'),
      trace: ['head 200', 'body', KEEP],
      body: 'hello',
    },
    { name: 'Connection: close', input: response('HTTP/1.1 200 OK', ['Connection: close', 'Content-Length: 2'], 'hi'), trace: ['head 200', 'body', DROP], body: 'hi' },
    { name: 'close among other connection options', input: response('HTTP/1.1 200 OK', ['Connection: TE, Close', 'Content-Length: 0']), trace: ['head 200', DROP], body: '' },
    { name: 'HTTP/1.0 without keep-alive', input: response('HTTP/1.0 200 OK', ['Content-Length: 2'], 'hi'), trace: ['head 200', 'body', DROP], body: 'hi' },
    {
      name: 'HTTP/1.0 with Connection: keep-alive',
      input: response('HTTP/1.0 200 OK', ['Connection: keep-alive', 'Content-Length: 2'], 'hi'),
      trace: ['head 200', 'body', KEEP],
      body: 'hi',
    },
    { name: 'HTTP/1.0 with Connection: Keep-Alive', input: response('HTTP/1.0 200 OK', ['Connection: Keep-Alive', 'Content-Length: 0']), trace: ['head 200', KEEP], body: '' },
    // The contract: never reusable after `Connection: close`, whatever else the field says.
    {
      name: 'HTTP/1.0 with Connection: keep-alive, close',
      input: response('HTTP/1.0 200 OK', ['Connection: keep-alive, close', 'Content-Length: 0']),
      trace: ['head 200', DROP],
      body: '',
    },
  ])('$name', ({ input, trace, body }) => expectFramed(input, { trace, body }));
});

describe('responses without a body', () => {
  it.each([
    { name: 'HEAD with Content-Length', method: 'HEAD', input: response('HTTP/1.1 200 OK', ['Content-Length: 5']), trace: ['head 200', KEEP] },
    { name: 'HEAD with chunked', method: 'HEAD', input: response('HTTP/1.1 200 OK', ['Transfer-Encoding: chunked']), trace: ['head 200', KEEP] },
    { name: 'HEAD without framing', method: 'HEAD', input: response('HTTP/1.1 200 OK', []), trace: ['head 200', KEEP] },
    { name: 'HEAD with Connection: close', method: 'HEAD', input: response('HTTP/1.1 200 OK', ['Connection: close', 'Content-Length: 5']), trace: ['head 200', DROP] },
    { name: 'HEAD on HTTP/1.0', method: 'HEAD', input: response('HTTP/1.0 200 OK', ['Content-Length: 5']), trace: ['head 200', DROP] },
    { name: '204 without framing', method: 'GET', input: response('HTTP/1.1 204 No Content', []), trace: ['head 204', KEEP] },
    { name: '204 with Content-Length', method: 'DELETE', input: response('HTTP/1.1 204 No Content', ['Content-Length: 5']), trace: ['head 204', KEEP] },
    { name: '304 with Content-Length', method: 'GET', input: response('HTTP/1.1 304 Not Modified', ['Content-Length: 10']), trace: ['head 304', KEEP] },
    { name: '304 with chunked', method: 'GET', input: response('HTTP/1.1 304 Not Modified', ['Transfer-Encoding: chunked']), trace: ['head 304', KEEP] },
    { name: '204 on HTTP/1.0', method: 'GET', input: response('HTTP/1.0 204 No Content', []), trace: ['head 204', DROP] },
  ])('$name ends with its head', ({ method, input, trace }) => expectFramed(input, { trace }, { method }));
});

describe('chunked bodies', () => {
  it.each([
    { name: 'several chunks', input: `${CHUNKED}5\r\nhello\r\n1\r\n \r\n5\r\nworld\r\n0\r\n\r\n`, body: 'hello world' },
    { name: 'an empty body', input: `${CHUNKED}0\r\n\r\n`, body: '' },
    { name: 'chunk extensions', input: `${CHUNKED}5;name=value;flag\r\nhello\r\n6;q="a;b"\r\n world\r\n0;last\r\n\r\n`, body: 'hello world' },
    { name: 'lower- and upper-case hex sizes', input: `${CHUNKED}a\r\n0123456789\r\nB\r\nabcdefghijk\r\n0\r\n\r\n`, body: '0123456789abcdefghijk' },
    { name: 'sizes with leading zeros', input: `${CHUNKED}0005\r\nhello\r\n000\r\n\r\n`, body: 'hello' },
    { name: 'chunk data that looks like the last chunk', input: `${CHUNKED}7\r\n0\r\n\r\nab\r\n0\r\n\r\n`, body: '0\r\n\r\nab' },
    { name: 'trailers, validated and dropped', input: `${CHUNKED}5\r\nhello\r\n0\r\nExpires: never\r\nX-Checksum:\tabc \r\n\r\n`, body: 'hello' },
    {
      name: 'chunked after another coding',
      input: response('HTTP/1.1 200 OK', ['Transfer-Encoding: gzip, chunked'], '3\r\n\x1f\x8b\x08\r\n0\r\n\r\n'),
      body: '\x1f\x8b\x08',
    },
    {
      name: 'chunked in a second Transfer-Encoding field',
      input: response('HTTP/1.1 200 OK', ['Transfer-Encoding: gzip', 'Transfer-Encoding: chunked'], '2\r\nhi\r\n0\r\n\r\n'),
      body: 'hi',
    },
    { name: 'Chunked in capitals', input: response('HTTP/1.1 200 OK', ['Transfer-Encoding: Chunked'], '2\r\nhi\r\n0\r\n\r\n'), body: 'hi' },
  ])('$name', ({ input, body }) => expectFramed(input, { trace: body === '' ? ['head 200', KEEP] : ['head 200', 'body', KEEP], body }));

  it('does not expose trailers as headers', () => {
    expectFramed(`${CHUNKED}0\r\nExpires: never\r\n\r\n`, { trace: ['head 200', KEEP], headers: [{ 'transfer-encoding': 'chunked' }] });
  });

  it.each([
    { name: 'after Connection: close', head: ['HTTP/1.1 200 OK', ['Connection: close', 'Transfer-Encoding: chunked']] as const },
    // RFC 9112 6.1: an HTTP/1.0 message with Transfer-Encoding is faulty framing; close after it.
    { name: 'on HTTP/1.0, even with keep-alive', head: ['HTTP/1.0 200 OK', ['Connection: keep-alive', 'Transfer-Encoding: chunked']] as const },
  ])('is not reusable $name', ({ head: [status, fields] }) => {
    expectFramed(response(status, [...fields], '2\r\nhi\r\n0\r\n\r\n'), { trace: ['head 200', 'body', DROP], body: 'hi' });
  });

  it('accepts trailers up to the head limit', () => {
    const trailers = 'X-Trailer: aaaa\r\n'.repeat(10);
    expectFramed(`${CHUNKED}2\r\nhi\r\n0\r\n${trailers}\r\n`, { trace: ['head 200', 'body', KEEP], body: 'hi' }, { maxHeadBytes: 256 });
  });

  it('accepts a chunk-size line of 1 KiB', () => {
    expectFramed(chunkLineOfLength(1024), { trace: ['head 200', 'body', KEEP], body: 'hello' });
  });
});

describe('bodies that run to the close', () => {
  it.each([
    { name: 'no framing', input: response('HTTP/1.1 200 OK', [], 'some body'), body: 'some body' },
    { name: 'no framing on HTTP/1.0', input: response('HTTP/1.0 200 OK', ['Connection: keep-alive'], 'some body'), body: 'some body' },
    { name: 'no framing despite keep-alive', input: response('HTTP/1.1 200 OK', ['Connection: keep-alive'], 'some body'), body: 'some body' },
    { name: 'Transfer-Encoding: gzip', input: response('HTTP/1.1 200 OK', ['Transfer-Encoding: gzip'], '5\r\nhello\r\n0\r\n\r\n'), body: '5\r\nhello\r\n0\r\n\r\n' },
    { name: 'Transfer-Encoding: gzip, deflate', input: response('HTTP/1.1 200 OK', ['Transfer-Encoding: gzip, deflate'], 'xyz'), body: 'xyz' },
    { name: 'an empty body', input: response('HTTP/1.1 200 OK', []), body: '' },
  ])('$name: the body ends, not reusable, when the upstream closes', ({ input, body }) =>
    expectFramed(input, { trace: body === '' ? ['head 200', DROP] : ['head 200', 'body', DROP], body }, { close: true }),
  );

  it('does not end before the upstream closes', () => {
    expectFramed(response('HTTP/1.1 200 OK', [], 'some body'), { trace: ['head 200', 'body'], body: 'some body' });
  });
});

describe('interim responses', () => {
  it.each<{ name: string; input: string; trace: string[]; body: string; headers: ResponseHeaders }>([
    { name: '100 Continue', input: `HTTP/1.1 100 Continue\r\n\r\n${response('HTTP/1.1 200 OK', ['Content-Length: 2'], 'hi')}`, trace: ['head 200', 'body', KEEP], body: 'hi', headers: { 'content-length': '2' } },
    {
      name: '103 Early Hints with headers',
      input: `HTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload\r\nLink: </b.js>\r\n\r\n${response('HTTP/1.1 200 OK', ['Content-Length: 0'])}`,
      trace: ['head 200', KEEP],
      body: '',
      headers: { 'content-length': '0' },
    },
    {
      name: 'several interim responses',
      input: `HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 102 Processing\r\n\r\n${response('HTTP/1.1 200 OK', ['Transfer-Encoding: chunked'], '2\r\nhi\r\n0\r\n\r\n')}`,
      trace: ['head 200', 'body', KEEP],
      body: 'hi',
      headers: { 'transfer-encoding': 'chunked' },
    },
    {
      name: 'an interim response with Content-Length',
      input: `HTTP/1.1 100 Continue\r\nContent-Length: 5\r\n\r\n${response('HTTP/1.1 204 No Content', [])}`,
      trace: ['head 204', KEEP],
      body: '',
      headers: {},
    },
  ])('$name: dropped, only the final head is reported', ({ input, trace, body, headers }) => expectFramed(input, { trace, body, headers: [headers] }));

  it('accepts 16 before the final response and rejects a 17th', () => {
    const final = response('HTTP/1.1 204 No Content', []);
    expectFramed(`${'HTTP/1.1 103 Early Hints\r\n\r\n'.repeat(16)}${final}`, { trace: ['head 204', KEEP] }, {}, 1);
    expectRejected(`${'HTTP/1.1 103 Early Hints\r\n\r\n'.repeat(17)}${final}`, /more than 16 interim/);
  });
});

describe('the head', () => {
  it.each([
    { name: 'a reason phrase', statusLine: 'HTTP/1.1 200 OK', status: 200 },
    { name: 'an empty reason phrase', statusLine: 'HTTP/1.1 200 ', status: 200 },
    { name: 'no reason phrase', statusLine: 'HTTP/1.1 404', status: 404 },
    { name: 'a reason with HTAB and obs-text', statusLine: 'HTTP/1.1 404 Not\tFound caf\xe9', status: 404 },
    { name: 'another HTTP/1 minor version', statusLine: 'HTTP/1.2 503 Unavailable', status: 503 },
  ])('accepts a status line with $name', ({ statusLine, status }) => {
    expectFramed(response(statusLine, ['Content-Length: 0']), { trace: [`head ${status}`, KEEP] });
  });

  it.each<{ name: string; fields: string[]; headers: ResponseHeaders }>([
    { name: 'lower-cases names', fields: ['X-Custom-HEADER: v'], headers: { 'x-custom-header': 'v' } },
    { name: 'accepts every token character in names', fields: ["!#$%&'*+-.^_`|~09AZaz: v"], headers: { "!#$%&'*+-.^_`|~09azaz": 'v' } },
    { name: 'gathers a repeated field in an array', fields: ['Set-Cookie: a=1', 'set-cookie: b=2'], headers: { 'set-cookie': ['a=1', 'b=2'] } },
    { name: 'gathers three repeats in order', fields: ['Via: 1', 'VIA: 2', 'via: 3'], headers: { via: ['1', '2', '3'] } },
    { name: 'trims SP and HTAB around values', fields: ['X: \t v a\tl \t'], headers: { x: 'v a\tl' } },
    { name: 'keeps a latin1 NBSP (0xA0) around values', fields: ['X: \xa0v\xa0'], headers: { x: '\xa0v\xa0' } },
    { name: 'keeps obs-text in values', fields: ['X: caf\xe9'], headers: { x: 'caf\xe9' } },
    { name: 'accepts an empty value', fields: ['X:', 'Y:  '], headers: { x: '', y: '' } },
    { name: 'accepts a colon in a value', fields: ['Location: http://a:80/'], headers: { location: 'http://a:80/' } },
  ])('$name', ({ fields, headers }) => {
    expectFramed(response('HTTP/1.1 204 No Content', fields), { trace: ['head 204', KEEP], headers: [headers] });
  });

  it('accepts a head of exactly maxHeadBytes', () => {
    expectFramed(headOfLength(256), { trace: ['head 204', KEEP] }, { maxHeadBytes: 256 });
  });
});

describe('rejects', () => {
  const fieldValue = (value: string): string => `HTTP/1.1 200 OK\r\nX: ${value}\r\nContent-Length: 0\r\n\r\n`;
  const fieldName = (name: string): string => `HTTP/1.1 200 OK\r\n${name}: v\r\nContent-Length: 0\r\n\r\n`;
  const statusLine = (line: string): string => `${line}\r\nContent-Length: 0\r\n\r\n`;
  const contentLength = (value: string): string => `HTTP/1.1 200 OK\r\nContent-Length: ${value}\r\n\r\nhello`;
  const chunkSize = (size: string): string => `${CHUNKED}${size}\r\nhello\r\n0\r\n\r\n`;
  const hex = (char: string): string => `0x${char.charCodeAt(0).toString(16).padStart(2, '0')}`;

  describe('line endings', () => {
    it.each([
      // Heads that never hold CRLFCRLF: execute must throw, not wait for an end that the upstream will not send.
      { name: 'a bare LF ending every head line', input: 'HTTP/1.1 200 OK\nContent-Length: 0\n\n', mentions: /bare LF/ },
      { name: 'a bare LF ending the head', input: 'HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\n', mentions: /bare LF/ },
      { name: 'a bare LF ending the status line', input: 'HTTP/1.1 200 OK\nContent-Length: 0\r\n\r\n', mentions: /bare LF|status line/ },
      { name: 'a bare LF ending a header line', input: 'HTTP/1.1 200 OK\r\nA: b\nContent-Length: 0\r\n\r\n', mentions: /bare LF|control characters/ },
      { name: 'a bare CR in a header line', input: 'HTTP/1.1 200 OK\r\nA: b\rContent-Length: 0\r\n\r\n', mentions: /bare CR|control characters/ },
      { name: 'a bare LF ending a chunk-size line', input: `${CHUNKED}5\nhello\r\n0\r\n\r\n`, mentions: /bare LF/ },
      { name: 'a bare LF ending the last chunk', input: `${CHUNKED}0\n\r\n`, mentions: /bare LF/ },
      { name: 'a bare LF ending a trailer', input: `${CHUNKED}0\r\nX: y\n\r\n`, mentions: /bare LF/ },
      { name: 'a bare LF ending the trailers', input: `${CHUNKED}0\r\n\n`, mentions: /bare LF/ },
    ])('$name', ({ input, mentions }) => expectRejected(input, mentions));
  });

  describe('status lines', () => {
    it.each([
      { name: 'HTTP/2.0', line: 'HTTP/2.0 200 OK' },
      { name: 'HTTP/2', line: 'HTTP/2 200 OK' },
      { name: 'a two-digit minor version', line: 'HTTP/1.10 200 OK' },
      { name: 'a lower-case protocol', line: 'http/1.1 200 OK' },
      { name: 'a 2-digit status', line: 'HTTP/1.1 20 OK' },
      { name: 'a 4-digit status', line: 'HTTP/1.1 2000 OK' },
      { name: 'a non-numeric status', line: 'HTTP/1.1 abc OK' },
      { name: 'two spaces before the status', line: 'HTTP/1.1  200 OK' },
      { name: 'HTAB after the status', line: 'HTTP/1.1 200\tOK' },
      { name: 'a control character in the reason', line: 'HTTP/1.1 200 O\x01K' },
      { name: 'leading whitespace', line: ' HTTP/1.1 200 OK' },
      { name: 'an empty line before it', line: '\r\nHTTP/1.1 200 OK' },
      { name: 'another protocol', line: 'ICY 200 OK' },
      { name: 'garbage', line: 'garbage' },
      // Neither interim nor final: dropping it as a 1xx would read its body as the next head.
      { name: 'a status below 100', line: 'HTTP/1.1 099 Weird' },
    ])('$name', ({ line }) => expectRejected(statusLine(line), /status/));

    it('101 Switching Protocols', () => {
      expectRejected(response('HTTP/1.1 101 Switching Protocols', ['Connection: upgrade', 'Upgrade: websocket']), /101/);
    });
  });

  describe('header fields', () => {
    it.each([
      { name: 'obsolete line folding with SP', input: 'HTTP/1.1 200 OK\r\nX: a\r\n b\r\nContent-Length: 0\r\n\r\n', mentions: /folding/ },
      { name: 'obsolete line folding with HTAB', input: 'HTTP/1.1 200 OK\r\nX: a\r\n\tb\r\nContent-Length: 0\r\n\r\n', mentions: /folding/ },
      { name: 'whitespace before the first field', input: 'HTTP/1.1 200 OK\r\n X: a\r\nContent-Length: 0\r\n\r\n', mentions: /folding|not a token/ },
      { name: 'a space before the colon', input: 'HTTP/1.1 200 OK\r\nContent-Length : 0\r\n\r\n', mentions: /not a token/ },
      { name: 'an HTAB before the colon', input: 'HTTP/1.1 200 OK\r\nContent-Length\t: 0\r\n\r\n', mentions: /not a token/ },
      { name: 'a line without a colon', input: 'HTTP/1.1 200 OK\r\nContent-Length 0\r\n\r\n', mentions: /no name/ },
      { name: 'an empty name', input: fieldName(''), mentions: /no name/ },
      ...['X Y', 'X(y)', 'X"y', '[x]', 'X/y', 'X@y', 'X\xc4'].map((name) => ({ name: `the name ${JSON.stringify(name)}`, input: fieldName(name), mentions: /not a token/ })),
      ...['\x00', '\x01', '\x1b', '\x7f', '\x0b'].map((char) => ({ name: `${hex(char)} in a value`, input: fieldValue(`a${char}b`), mentions: /control characters/ })),
      { name: 'a control character at the end of a value', input: fieldValue('ab\x01'), mentions: /control characters/ },
    ])('$name', ({ input, mentions }) => expectRejected(input, mentions));

    it.each([
      { name: 'complete', input: headOfLength(257) },
      { name: 'never ending', input: `HTTP/1.1 200 OK\r\nX: ${'a'.repeat(300)}` },
      { name: 'of an interim response', input: `HTTP/1.1 103 Early Hints\r\nLink: ${'a'.repeat(300)}\r\n\r\n${response('HTTP/1.1 204 No Content', [])}` },
    ])('a head larger than maxHeadBytes, $name', ({ input }) => expectRejected(input, /head is larger than 256 bytes/, { maxHeadBytes: 256 }));
  });

  describe('framing', () => {
    it.each([
      { name: 'Transfer-Encoding and Content-Length', fields: ['Transfer-Encoding: chunked', 'Content-Length: 5'], mentions: /both/ },
      { name: 'Content-Length and Transfer-Encoding', fields: ['Content-Length: 5', 'Transfer-Encoding: chunked'], mentions: /both/ },
      { name: 'Content-Length with another coding', fields: ['Transfer-Encoding: gzip', 'Content-Length: 5'], mentions: /both/ },
      { name: 'chunked not last', fields: ['Transfer-Encoding: chunked, gzip'], mentions: /chunked exactly once, last/ },
      { name: 'chunked twice in a list', fields: ['Transfer-Encoding: chunked, chunked'], mentions: /chunked exactly once, last/ },
      { name: 'chunked in two fields', fields: ['Transfer-Encoding: chunked', 'Transfer-Encoding: chunked'], mentions: /chunked exactly once, last/ },
      { name: 'different Content-Length fields', fields: ['Content-Length: 5', 'Content-Length: 6'], mentions: /different Content-Length values 5 and 6/ },
      { name: 'different Content-Length values in a list', fields: ['Content-Length: 5, 6'], mentions: /different Content-Length values 5 and 6/ },
      { name: 'a differing value after equal ones', fields: ['Content-Length: 5, 5', 'Content-Length: 6'], mentions: /different Content-Length values 5 and 6/ },
    ])('$name', ({ fields, mentions }) => expectRejected(response('HTTP/1.1 200 OK', fields, '5\r\nhello\r\n0\r\n\r\n'), mentions));

    it.each(['+5', '0x5', '-1', '', '5.0', '1e3', '5 5', '5;', '1234567890123456'])('the Content-Length %j', (value) => {
      expectRejected(contentLength(value), /not a decimal number/);
    });
  });

  describe('chunked bodies', () => {
    it.each(['g', '-1', '0x5', '+5', ' 5', '5 ', '', '1000000000000'])('the chunk size %j', (size) => expectRejected(chunkSize(size), /not a hexadecimal number/));

    it.each([
      { name: 'a control character in an extension', input: chunkSize('5;a\x01'), mentions: /chunk extension holds control characters/ },
      { name: 'chunk data longer than its size', input: `${CHUNKED}5\r\nhello!\r\n0\r\n\r\n`, mentions: /not followed by CRLF/ },
      { name: 'chunk data followed by a bare LF', input: `${CHUNKED}5\r\nhello\n0\r\n\r\n`, mentions: /not followed by CRLF/ },
      { name: 'chunk data followed by a bare CR', input: `${CHUNKED}5\r\nhello\r0\r\n\r\n`, mentions: /not followed by CRLF/ },
      { name: 'a chunk-size line over 1 KiB', input: chunkLineOfLength(1025), mentions: /chunk-size line is longer than 1024 bytes/ },
      { name: 'a never-ending chunk-size line', input: `${CHUNKED}5;${'a'.repeat(1100)}`, mentions: /chunk-size line is longer than 1024 bytes/ },
      { name: 'a folded trailer', input: `${CHUNKED}0\r\nX: a\r\n b\r\n\r\n`, mentions: /folding/ },
      { name: 'a trailer with a space before the colon', input: `${CHUNKED}0\r\nX : a\r\n\r\n`, mentions: /not a token/ },
      { name: 'a trailer without a colon', input: `${CHUNKED}0\r\nno colon\r\n\r\n`, mentions: /no name/ },
      { name: 'a control character in a trailer', input: `${CHUNKED}0\r\nX: a\x01\r\n\r\n`, mentions: /control characters/ },
      { name: 'one trailer larger than the head limit', input: `${CHUNKED}0\r\nX: ${'a'.repeat(300)}\r\n\r\n`, mentions: /trailers are larger than 256 bytes/ },
      { name: 'trailers together larger than the head limit', input: `${CHUNKED}0\r\n${'X-Trailer: aaaa\r\n'.repeat(16)}\r\n`, mentions: /trailers are larger than 256 bytes/ },
    ])('$name', ({ input, mentions }) => expectRejected(input, mentions, { maxHeadBytes: 256 }));
  });

  describe('a close before the response is complete', () => {
    it.each([
      { name: 'in the status line', method: 'GET', input: 'HTTP/1.1 2' },
      { name: 'in a header', method: 'GET', input: 'HTTP/1.1 200 OK\r\nContent-Le' },
      { name: 'before the empty line', method: 'GET', input: 'HTTP/1.1 200 OK\r\nContent-Length: 0\r\n' },
      { name: 'in the head of a HEAD response', method: 'HEAD', input: 'HTTP/1.1 200 OK\r\nContent-Length: 5\r\n' },
      { name: 'after an interim response', method: 'GET', input: 'HTTP/1.1 100 Continue\r\n\r\n' },
      { name: 'before a fixed body', method: 'GET', input: response('HTTP/1.1 200 OK', ['Content-Length: 5']) },
      { name: 'in a fixed body', method: 'GET', input: response('HTTP/1.1 200 OK', ['Content-Length: 5'], 'hel') },
      { name: 'before a chunked body', method: 'GET', input: CHUNKED },
      { name: 'in a chunk-size line', method: 'GET', input: `${CHUNKED}5;a=` },
      { name: 'in chunk data', method: 'GET', input: `${CHUNKED}5\r\nhel` },
      { name: 'before the CRLF after chunk data', method: 'GET', input: `${CHUNKED}5\r\nhello\r` },
      { name: 'after the last chunk', method: 'GET', input: `${CHUNKED}5\r\nhello\r\n0\r\n` },
      { name: 'in the trailers', method: 'GET', input: `${CHUNKED}0\r\nX: y\r\n` },
    ])('$name', ({ method, input }) => expectRejected(input, /closed the connection before the response was complete/, { method, close: true }, 'ERR_UPSTREAM_CLOSED'));

    it('before any byte of the response', () => {
      expect(feed([], { close: true }).error).toMatch(/^ERR_UPSTREAM_CLOSED: .*closed the connection before a response/);
    });
  });
});

describe('bytes after the end of a response', () => {
  const hello = response('HTTP/1.1 200 OK', ['Content-Length: 5'], 'hello');
  it.each([
    { name: 'garbage after a Content-Length body', method: 'GET', input: hello, extra: 'garbage', trace: ['head 200', 'body', DROP], body: 'hello' },
    { name: 'a pipelined response after a Content-Length body', method: 'GET', input: hello, extra: hello, trace: ['head 200', 'body', DROP], body: 'hello' },
    { name: 'a body after an empty Content-Length body', method: 'GET', input: response('HTTP/1.1 200 OK', ['Content-Length: 0']), extra: 'hello', trace: ['head 200', DROP], body: '' },
    { name: 'a body after the head of a HEAD response', method: 'HEAD', input: response('HTTP/1.1 200 OK', ['Content-Length: 5']), extra: 'hello', trace: ['head 200', DROP], body: '' },
    { name: 'a body after a 204', method: 'GET', input: response('HTTP/1.1 204 No Content', []), extra: '5\r\nhello\r\n0\r\n\r\n', trace: ['head 204', DROP], body: '' },
    { name: 'garbage after a 304', method: 'GET', input: response('HTTP/1.1 304 Not Modified', ['Content-Length: 5']), extra: 'x', trace: ['head 304', DROP], body: '' },
    { name: 'garbage after a chunked body', method: 'GET', input: `${CHUNKED}5\r\nhello\r\n0\r\n\r\n`, extra: 'garbage', trace: ['head 200', 'body', DROP], body: 'hello' },
    { name: 'an extra CRLF after trailers', method: 'GET', input: `${CHUNKED}5\r\nhello\r\n0\r\nX: y\r\n\r\n`, extra: '\r\n', trace: ['head 200', 'body', DROP], body: 'hello' },
  ])('$name in the same read: the response ends, not reusable, without them', ({ method, input, extra, trace, body }) => {
    expectFramed(input + extra, { trace, body }, { method }, input.length);
  });

  it.each([
    { name: 'a Content-Length body', method: 'GET', input: hello, close: false, trace: ['head 200', 'body', KEEP] },
    { name: 'the head of a HEAD response', method: 'HEAD', input: response('HTTP/1.1 200 OK', ['Content-Length: 5']), close: false, trace: ['head 200', KEEP] },
    { name: 'a chunked body', method: 'GET', input: `${CHUNKED}0\r\n\r\n`, close: false, trace: ['head 200', KEEP] },
    { name: 'a body ended by the close', method: 'GET', input: response('HTTP/1.1 200 OK', [], 'hi'), close: true, trace: ['head 200', 'body', DROP] },
  ])('$name, in a later read: rejected as unexpected', ({ method, input, close, trace }) => {
    const recorder = new Recorder();
    const parser = new ResponseParser(recorder);
    parser.begin(method);
    parser.execute(bytes(input));
    if (close) parser.end();
    expect(recorder.take()).toMatchObject({ trace });
    expect(attempt(() => parser.execute(bytes('hello')))).toMatch(/^ERR_UPSTREAM_RESPONSE: .*while no response was expected/);
  });

  it('rejects bytes before any begin()', () => {
    const parser = new ResponseParser(new Recorder());
    expect(attempt(() => parser.execute(bytes(response('HTTP/1.1 204 No Content', []))))).toMatch(/^ERR_UPSTREAM_RESPONSE: .*while no response was expected/);
  });
});

describe('the parser across responses', () => {
  it('reports responseStarted from the first byte of each response', () => {
    const recorder = new Recorder();
    const parser = new ResponseParser(recorder);
    parser.begin('GET');
    expect(parser.responseStarted).toBe(false);
    parser.execute(bytes('H'));
    expect(parser.responseStarted).toBe(true);
    parser.execute(bytes('TTP/1.1 204 No Content\r\n\r\n'));
    parser.begin('GET');
    expect(parser.responseStarted).toBe(false);
  });

  it('reads responses back to back on one connection', () => {
    const exchanges = [
      { method: 'GET', input: response('HTTP/1.1 200 OK', ['Content-Length: 5'], 'hello'), trace: ['head 200', 'body', KEEP], body: 'hello' },
      { method: 'HEAD', input: response('HTTP/1.1 200 OK', ['Content-Length: 5']), trace: ['head 200', KEEP], body: '' },
      { method: 'GET', input: `${CHUNKED}5\r\nworld\r\n0\r\nX: y\r\n\r\n`, trace: ['head 200', 'body', KEEP], body: 'world' },
      { method: 'POST', input: `HTTP/1.1 100 Continue\r\n\r\n${response('HTTP/1.1 201 Created', ['Content-Length: 2'], 'ok')}`, trace: ['head 201', 'body', KEEP], body: 'ok' },
      { method: 'GET', input: response('HTTP/1.1 304 Not Modified', []), trace: ['head 304', KEEP], body: '' },
      { method: 'GET', input: response('HTTP/1.1 200 OK', ['Content-Length: 0']), trace: ['head 200', KEEP], body: '' },
    ];
    const recorder = new Recorder();
    const parser = new ResponseParser(recorder);
    for (const { method, input, trace, body } of exchanges) {
      parser.begin(method);
      parser.execute(bytes(input));
      expect(recorder.take(), input).toMatchObject({ trace, body });
    }
    parser.end();
    expect(recorder.take()).toMatchObject({ trace: [] });
  });

  it.each([
    { name: 'a Content-Length body', input: response('HTTP/1.1 200 OK', ['Content-Length: 11'], 'hello world'), close: false },
    { name: 'a chunked body', input: `${CHUNKED}5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n`, close: false },
    { name: 'a body ended by the close', input: response('HTTP/1.1 200 OK', [], 'hello world'), close: true },
  ])('delivers $name as views of the reads, not copies', ({ input, close }) => {
    const read = bytes(input);
    const slices: Buffer[] = [];
    const parser = new ResponseParser({ onHead() {}, onBody: (chunk) => slices.push(chunk), onEnd() {} });
    parser.begin('GET');
    parser.execute(read);
    if (close) parser.end();
    expect(Buffer.concat(slices).toString('latin1')).toBe('hello world');
    read.fill('!');
    expect(Buffer.concat(slices).toString('latin1')).toBe('!'.repeat(11));
  });
});

describe('random valid responses in random reads', () => {
  /** mulberry32: a small seeded generator, so that a failure reproduces from its seed. */
  function generator(seed: number): (below: number) => number {
    let state = seed >>> 0;
    return (below) => {
      state = (state + 0x6d2b79f5) >>> 0;
      let t = Math.imul(state ^ (state >>> 15), state | 1);
      t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
      return Math.floor((((t ^ (t >>> 14)) >>> 0) / 4294967296) * below);
    };
  }

  type Random = (below: number) => number;

  const pick = <T>(random: Random, items: readonly T[]): T => items[random(items.length)]!;
  const mixedCase = (random: Random, text: string): string => Array.from(text, (c) => (random(2) ? c.toUpperCase() : c)).join('');
  const whitespace = (random: Random): string => pick(random, ['', ' ', '\t', '  ', ' \t ']);

  /** A field value: words of visible ASCII or obs-text, with SP or HTAB between them and never around. */
  function fieldValue(random: Random): string {
    const char = (): string => String.fromCharCode(random(4) ? 0x21 + random(94) : 0x80 + random(128));
    const word = (): string => Array.from({ length: 1 + random(8) }, char).join('');
    return random(6) === 0 ? '' : Array.from({ length: 1 + random(4) }, word).join(pick(random, [' ', '\t']));
  }

  function chunkedPayload(random: Random, body: Buffer): string {
    let payload = '';
    for (let at = 0; at < body.length; ) {
      const size = Math.min(body.length - at, 1 + random(700));
      const extension = random(4) === 0 ? ';ext="v"' : '';
      payload += `${mixedCase(random, size.toString(16))}${extension}\r\n${body.toString('latin1', at, at + size)}\r\n`;
      at += size;
    }
    return `${payload}0\r\n${random(3) === 0 ? `X-Trailer: ${fieldValue(random)}\r\n` : ''}\r\n`;
  }

  function randomExchange(random: Random): { method: string; input: Buffer; expected: Expected } {
    const method = random(8) === 0 ? 'HEAD' : 'GET';
    const status = pick(random, [200, 201, 206, 404, 500]);
    const body = Buffer.from(Array.from({ length: random(4) === 0 ? 0 : random(3000) }, () => random(256)));
    const headers: ResponseHeaders = {};
    const lines: string[] = [];
    for (let i = random(8); i > 0; i--) {
      const value = fieldValue(random);
      headers[`x-fuzz-${i}`] = value;
      lines.push(`${mixedCase(random, `x-fuzz-${i}`)}:${whitespace(random)}${value}${whitespace(random)}`);
    }
    const chunked = random(2) === 0;
    const [name, framing] = chunked ? ['transfer-encoding', 'chunked'] : ['content-length', String(body.length)];
    headers[name] = framing;
    lines.splice(random(lines.length + 1), 0, `${mixedCase(random, name)}: ${framing}`);
    const interim = random(4) === 0 ? 'HTTP/1.1 100 Continue\r\n\r\n' : '';
    const sent = method === 'HEAD' ? '' : chunked ? chunkedPayload(random, body) : body.toString('latin1');
    return {
      method,
      input: bytes(interim + response(`HTTP/1.1 ${status}${pick(random, ['', ' ', ' Some Reason'])}`, lines, sent)),
      expected: {
        trace: [`head ${status}`, ...(sent === '' || body.length === 0 ? [] : ['body']), KEEP],
        body: method === 'HEAD' ? '' : body.toString('latin1'),
        headers: [headers],
      },
    };
  }

  function randomReads(random: Random, input: Buffer): Buffer[] {
    const count = random(5) === 0 ? random(input.length) : random(8);
    const cuts = [...new Set(Array.from({ length: count }, () => 1 + random(input.length - 1)))].sort((a, b) => a - b);
    return [0, ...cuts].map((start, i) => input.subarray(start, cuts[i] ?? input.length));
  }

  it.each([1, 2, 3, 4])('seed %i: every body decoded, one head and one end each', (seed) => {
    const random = generator(seed);
    for (let connection = 0; connection < 100; connection++) {
      const recorder = new Recorder();
      const parser = new ResponseParser(recorder);
      for (let exchange = 1 + random(3); exchange > 0; exchange--) {
        const { method, input, expected } = randomExchange(random);
        const reads = randomReads(random, input);
        parser.begin(method);
        const error = attempt(() => reads.forEach((read) => parser.execute(read)));
        const context = `seed ${seed}, connection ${connection}: ${method} ${JSON.stringify(input.toString('latin1').slice(0, 300))} in reads of ${reads.map((r) => r.length).join(',')}`;
        expect(recorder.take(error), context).toEqual({ ...expected, error: null });
      }
    }
  });
});
