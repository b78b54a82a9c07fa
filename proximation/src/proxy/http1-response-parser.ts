/**
 * Incremental parser of the HTTP/1.x responses an upstream sends on one connection, one response per
 * request (no pipelining). It is strict where leniency lets a response be read two ways, because a
 * proxy that frames a response differently from the upstream hands the rest of it to the next client
 * on that connection:
 * - status line `HTTP/1.<digit> <3 digits>[ <reason>]` and every line ended by CRLF (a bare LF is an error);
 * - header names are RFC 9110 tokens followed directly by the colon; values hold no control characters
 *   other than HTAB; obsolete line folding is an error;
 * - framing as RFC 9112 6.3 says: no body after HEAD or for 1xx, 204 and 304; `Transfer-Encoding` whose
 *   last coding is `chunked` → chunked; any other `Transfer-Encoding` → the body runs to the connection's
 *   close; `Content-Length` (every value the same decimal number) → exactly that many bytes; neither →
 *   to the close. A response with both `Transfer-Encoding` and `Content-Length`, or `chunked` applied
 *   twice or not last, is an error rather than a guess;
 * - the head (status line, headers and the empty line) is limited to `maxHeadBytes`, so are the trailers
 *   of a chunked body, a chunk-size line to 1 KiB (line ends included), and a response to 16 interim
 *   (1xx) responses before its final one;
 * - repeated Content-Length values must be the same digits (`5, 5`, not `5, 05`); a chunk size is hex
 *   digits directly followed by CRLF or `;` and an extension.
 *
 * Events: `onInformational` for each interim (1xx) response before the final one (101 is an error,
 * since upgrades do not come this way), `onHead` once per final response, `onBody` with slices of the
 * buffers given to `execute` (no copies: valid as long as the caller's buffer is; what the parser keeps
 * between calls it copies), `onEnd` once the response is complete, with the trailer fields of a chunked
 * body (validated as header fields are; undefined when there were none). `onEnd`'s `reusable` says
 * whether the connection may carry another request: not after `Connection: close`, an HTTP/1.0 response
 * without keep-alive or with Transfer-Encoding (RFC 9112 6.1), a body that ran to the close, or bytes
 * that came after the end of the response.
 *
 * Throws `ProximationError('ERR_UPSTREAM_RESPONSE')` naming what was wrong, from `execute` for malformed
 * input or bytes while no response is expected, and `ERR_UPSTREAM_CLOSED` from `end` when the upstream
 * closed before the response was complete. After a throw the parser is unusable: drop the connection.
 */
import { ProximationError } from '@proximation/shared';

export type ResponseHeaders = Record<string, string | string[]>;

export interface ResponseEvents {
  onInformational?(status: number, headers: ResponseHeaders): void;
  onHead(status: number, headers: ResponseHeaders): void;
  onBody(chunk: Buffer): void;
  onEnd(reusable: boolean, trailers: ResponseHeaders | undefined): void;
}

const CR = 13;
const LF = 10;
const HEAD_END = Buffer.from('\r\n\r\n', 'latin1');
const MAX_CHUNK_LINE = 1024;
const MAX_INTERIM = 16;
/** RFC 9110 token characters (header names) and field-value characters (no controls but HTAB). */
const TOKEN_CHAR = "[!#$%&'*+\\-.^_`|~0-9A-Za-z]";
const VALUE_CHAR = '[\\t\\x20-\\x7e\\x80-\\xff]';
const FIELD_LINE = `${TOKEN_CHAR}+:${VALUE_CHAR}*`;
const TOKEN = new RegExp(`^${TOKEN_CHAR}+$`);
const FIELD_VALUE = new RegExp(`^${VALUE_CHAR}*$`);
const STATUS_LINE = new RegExp(`^HTTP/1\\.([0-9]) ([0-9]{3})(?: ${VALUE_CHAR}*)?$`);
const FIELD_BLOCK = new RegExp(`${FIELD_LINE}(?:\\r\\n${FIELD_LINE})*$`, 'y');
const DECIMAL = /^[0-9]{1,15}$/;
const HEX = /^[0-9A-Fa-f]{1,12}$/;

const enum State {
  Idle,
  Head,
  FixedBody,
  ChunkLine,
  ChunkData,
  ChunkDataEnd,
  Trailer,
  UntilClose,
}

function invalid(what: string): ProximationError {
  return new ProximationError('ERR_UPSTREAM_RESPONSE', `the upstream sent an invalid response: ${what}`);
}

export class ResponseParser {
  private state = State.Idle;
  private noBody = false;
  private started = false;
  /** The start of a head, chunk-size line or trailer line that has not fully arrived. */
  private pending: Buffer | undefined;
  private trailerBytes = 0;
  private trailers: ResponseHeaders | undefined;
  private remaining = 0;
  private reusable = true;
  private interim = 0;

  constructor(
    private readonly events: ResponseEvents,
    private readonly maxHeadBytes = 16 * 1024,
  ) {}

  /** Expects the response to a request with this method; call before sending each request. */
  begin(method: string): void {
    this.state = State.Head;
    this.noBody = method === 'HEAD';
    this.started = false;
    this.pending = undefined;
    this.interim = 0;
  }

  /** Whether any byte of the expected response arrived (a failure before that may be a stale connection). */
  get responseStarted(): boolean {
    return this.started;
  }

  execute(data: Buffer): void {
    if (this.idle()) throw invalid(`${data.length} bytes arrived while no response was expected`);
    this.started = true;
    let at = 0;
    // Bytes after a complete response are left unread: finish() told the caller to drop the connection.
    while (at < data.length && !this.idle()) {
      switch (this.state) {
        case State.Head:
          at = this.readHead(data, at);
          break;
        case State.FixedBody:
        case State.ChunkData: {
          const take = Math.min(this.remaining, data.length - at);
          this.remaining -= take;
          this.events.onBody(data.subarray(at, at + take));
          at += take;
          if (this.remaining !== 0) break;
          if (this.state === State.ChunkData) {
            this.state = State.ChunkDataEnd;
            this.remaining = 2;
            break;
          }
          this.finish(at < data.length);
          return;
        }
        case State.ChunkDataEnd:
          if (data[at] !== (this.remaining === 2 ? CR : LF)) throw invalid('a chunk is not followed by CRLF');
          at++;
          if (--this.remaining === 0) this.state = State.ChunkLine;
          break;
        case State.ChunkLine:
        case State.Trailer:
          at = this.readLine(data, at);
          break;
        case State.UntilClose:
          this.events.onBody(at === 0 ? data : data.subarray(at));
          return;
      }
    }
  }

  /** The upstream closed its side: completes a body that runs to the close, else throws if a response was expected. */
  end(): void {
    const state = this.state;
    this.state = State.Idle;
    if (state === State.UntilClose) this.events.onEnd(false, undefined);
    else if (state !== State.Idle) {
      throw new ProximationError('ERR_UPSTREAM_CLOSED', this.started ? 'the upstream closed the connection before the response was complete' : 'the upstream closed the connection before a response');
    }
  }

  /** A method, not an inline test: TypeScript would narrow `state` and miss that the handlers change it. */
  private idle(): boolean {
    return this.state === State.Idle;
  }

  private readHead(data: Buffer, at: number): number {
    const pendingLength = this.pending?.length ?? 0;
    const buf = this.pending === undefined ? data.subarray(at) : Buffer.concat([this.pending, data.subarray(at)]);
    const found = buf.indexOf(HEAD_END, Math.max(0, pendingLength - 3));
    const length = found === -1 ? buf.length : found + 4;
    if (length > this.maxHeadBytes) throw invalid(`its head is larger than ${this.maxHeadBytes} bytes`);
    if (found === -1) {
      // A head that ends its lines in bare LF would never end; say so now rather than at the size limit.
      for (let lf = buf.indexOf(LF); lf !== -1; lf = buf.indexOf(LF, lf + 1)) {
        if (lf === 0 || buf[lf - 1] !== CR) throw invalid('a line of its head ends in a bare LF');
      }
      this.pending = Buffer.from(buf);
      return data.length;
    }
    this.pending = undefined;
    const next = at + length - pendingLength;
    this.parseHead(buf.toString('latin1', 0, found), next < data.length);
    // A response without a body ends with its head: whatever follows is not ours to read.
    return this.state === State.Idle ? data.length : next;
  }

  private parseHead(text: string, more: boolean): void {
    const statusEnd = text.indexOf('\r\n');
    const statusLine = statusEnd === -1 ? text : text.slice(0, statusEnd);
    const match = STATUS_LINE.exec(statusLine);
    if (match === null) throw invalid(`its status line ${JSON.stringify(statusLine.slice(0, 100))} is not HTTP/1.x <3-digit status>`);
    const status = Number(match[2]);
    const headers = statusEnd === -1 ? {} : parseFields(text, statusEnd + 2);
    if (status < 200) {
      if (status < 100) throw invalid(`its status ${match[2]} is below 100`);
      if (status === 101) throw invalid('it switched protocols (101) on a request that did not ask to upgrade');
      if (++this.interim > MAX_INTERIM) throw invalid(`it sent more than ${MAX_INTERIM} interim (1xx) responses`);
      this.events.onInformational?.(status, headers);
      return;
    }
    const connection = headers['connection'];
    this.reusable = !hasToken(connection, 'close') && (match[1] !== '0' || hasToken(connection, 'keep-alive'));
    const transferEncoding = headers['transfer-encoding'];
    const contentLength = headers['content-length'];
    if (this.noBody || status === 204 || status === 304) {
      this.state = State.Idle;
    } else if (transferEncoding !== undefined) {
      if (contentLength !== undefined) throw invalid('it has both Transfer-Encoding and Content-Length');
      const codings = [...listValues(transferEncoding)].map((c) => c.toLowerCase());
      const chunked = codings.indexOf('chunked');
      if (chunked !== -1 && chunked !== codings.length - 1) {
        throw invalid(`its Transfer-Encoding ${JSON.stringify(codings.join(', '))} does not apply chunked exactly once, last`);
      }
      this.state = chunked === -1 ? State.UntilClose : State.ChunkLine;
      if (match[1] === '0') this.reusable = false;
    } else if (contentLength !== undefined) {
      this.remaining = contentLengthOf(contentLength);
      this.state = this.remaining === 0 ? State.Idle : State.FixedBody;
    } else {
      this.state = State.UntilClose;
    }
    this.events.onHead(status, headers);
    if (this.state === State.Idle) this.finish(more);
  }

  /** A chunk-size line, or a trailer line after the last chunk. */
  private readLine(data: Buffer, at: number): number {
    const lf = data.indexOf(LF, at);
    const end = lf === -1 ? data.length : lf + 1;
    const piece = data.subarray(at, end);
    const line = this.pending === undefined ? piece : Buffer.concat([this.pending, piece]);
    const limit = this.state === State.ChunkLine ? MAX_CHUNK_LINE : this.maxHeadBytes - this.trailerBytes;
    if (line.length > limit) throw invalid(this.state === State.ChunkLine ? `a chunk-size line is longer than ${MAX_CHUNK_LINE} bytes` : `its trailers are larger than ${this.maxHeadBytes} bytes`);
    if (lf === -1) {
      this.pending = Buffer.from(line);
      return end;
    }
    this.pending = undefined;
    if (line.length < 2 || line[line.length - 2] !== CR) throw invalid('a line ends in a bare LF');
    const text = line.toString('latin1', 0, line.length - 2);
    if (this.state === State.Trailer) {
      if (text === '') {
        this.finish(end < data.length);
        return data.length;
      }
      this.trailerBytes += line.length;
      addField((this.trailers ??= {}), text);
      return end;
    }
    const semicolon = text.indexOf(';');
    const size = semicolon === -1 ? text : text.slice(0, semicolon);
    if (!HEX.test(size)) throw invalid(`the chunk size ${JSON.stringify(size.slice(0, 20))} is not a hexadecimal number`);
    if (semicolon !== -1 && !FIELD_VALUE.test(text.slice(semicolon))) throw invalid('a chunk extension holds control characters');
    this.remaining = parseInt(size, 16);
    if (this.remaining !== 0) {
      this.state = State.ChunkData;
    } else {
      this.state = State.Trailer;
      this.trailerBytes = 0;
      this.trailers = undefined;
    }
    return end;
  }

  private finish(more: boolean): void {
    this.state = State.Idle;
    this.pending = undefined;
    const { trailers } = this;
    this.trailers = undefined;
    this.events.onEnd(this.reusable && !more, trailers);
  }
}

/**
 * The header fields of a head, from `from` to the end of `text` (lines separated by CRLF). One regular
 * expression checks the whole block (names are tokens, values hold no control characters but HTAB, every
 * line ends in CRLF); only a block that fails it is read line by line, to say which line is wrong.
 */
function parseFields(text: string, from: number): ResponseHeaders {
  FIELD_BLOCK.lastIndex = from;
  const headers: ResponseHeaders = {};
  if (!FIELD_BLOCK.test(text)) {
    for (const line of text.slice(from).split('\r\n')) addField(headers, line);
    throw invalid('its header block is malformed');
  }
  for (let at = from; at < text.length; ) {
    let end = text.indexOf('\r\n', at);
    if (end === -1) end = text.length;
    const colon = text.indexOf(':', at);
    store(headers, text.slice(at, colon).toLowerCase(), trimWhitespace(text.slice(colon + 1, end)));
    at = end + 2;
  }
  return headers;
}

function store(headers: ResponseHeaders, name: string, value: string): void {
  const previous = headers[name];
  if (previous === undefined) headers[name] = value;
  else if (typeof previous === 'string') headers[name] = [previous, value];
  else previous.push(value);
}

function addField(headers: ResponseHeaders, line: string): void {
  const colon = line.indexOf(':');
  if (colon <= 0) {
    const first = line.charCodeAt(0);
    if (first === 32 || first === 9) throw invalid('it folds a header over several lines (obsolete line folding)');
    throw invalid(`the header line ${JSON.stringify(line.slice(0, 100))} has no name`);
  }
  const name = line.slice(0, colon);
  if (!TOKEN.test(name)) throw invalid(`the header name ${JSON.stringify(name.slice(0, 100))} is not a token`);
  const value = trimWhitespace(line.slice(colon + 1));
  if (!FIELD_VALUE.test(value)) throw invalid(`the value of header ${name} holds control characters`);
  store(headers, name.toLowerCase(), value);
}

/** Strips optional whitespace (SP and HTAB only: String.trim would also eat the latin1 NBSP of a value). */
function trimWhitespace(value: string): string {
  let start = 0;
  let end = value.length;
  while (start < end && (value.charCodeAt(start) === 32 || value.charCodeAt(start) === 9)) start++;
  while (end > start && (value.charCodeAt(end - 1) === 32 || value.charCodeAt(end - 1) === 9)) end--;
  return start === 0 && end === value.length ? value : value.slice(start, end);
}

function* listValues(value: string | string[]): Iterable<string> {
  for (const field of typeof value === 'string' ? [value] : value) {
    for (const item of field.split(',')) {
      const trimmed = trimWhitespace(item);
      if (trimmed !== '') yield trimmed;
    }
  }
}

function hasToken(value: string | string[] | undefined, token: string): boolean {
  if (value === undefined) return false;
  if (typeof value === 'string' && !value.includes(',')) return value.length === token.length && value.toLowerCase() === token;
  for (const item of listValues(value)) if (item.toLowerCase() === token) return true;
  return false;
}

function contentLengthOf(value: string | string[]): number {
  if (typeof value === 'string' && DECIMAL.test(value)) return Number(value);
  let length: string | undefined;
  for (const field of typeof value === 'string' ? [value] : value) {
    for (const item of field.split(',')) {
      const trimmed = trimWhitespace(item);
      if (!DECIMAL.test(trimmed)) throw invalid(`its Content-Length ${JSON.stringify(trimmed.slice(0, 30))} is not a decimal number`);
      if (length !== undefined && length !== trimmed) throw invalid(`it has different Content-Length values ${length} and ${trimmed}`);
      length = trimmed;
    }
  }
  return Number(length);
}
