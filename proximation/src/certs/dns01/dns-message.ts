/**
 * The DNS wire format (RFC 1035), as far as DNS-01 needs it: queries, RFC 2136 UPDATE messages and their
 * TSIG signatures (RFC 8945), and the parsing of answers.
 *
 * Written here rather than taken from npm: dns-packet (the well-kept encoder) has no TSIG record and no
 * notion of signing, and no maintained package signs UPDATE messages. What is needed is small: names
 * (with compression on reading), a header, TXT/NS/SOA/CNAME/A/AAAA data, and one HMAC over a
 * well-defined byte string.
 *
 * Guarantees: `buildQuery` and `buildUpdate` produce messages any RFC 1035 server parses; `signTsig`
 * appends a TSIG record whose MAC BIND, Knot and PowerDNS verify; `parseMessage` reads any answer and
 * throws ProximationError ERR_DNS_MALFORMED (naming what was wrong) for bytes that are not a DNS message;
 * `verifyTsig` says whether a signed response carries the MAC the key makes for it.
 */
import { createHmac, timingSafeEqual } from 'node:crypto';
import { ProximationError } from '@proximation/shared';

export const TYPE = { A: 1, NS: 2, CNAME: 5, SOA: 6, TXT: 16, AAAA: 28, TSIG: 250, ANY: 255 } as const;
const CLASS = { IN: 1, NONE: 254, ANY: 255 } as const;
const OPCODE_UPDATE = 5;

/** Response codes by number (RFC 1035, 2136, 8945), for messages that name what a server said. */
export const RCODE_NAMES: Record<number, string> = {
  0: 'NOERROR', 1: 'FORMERR', 2: 'SERVFAIL', 3: 'NXDOMAIN', 4: 'NOTIMP', 5: 'REFUSED', 6: 'YXDOMAIN', 7: 'YXRRSET',
  8: 'NXRRSET', 9: 'NOTAUTH', 10: 'NOTZONE', 16: 'BADSIG', 17: 'BADKEY', 18: 'BADTIME',
};

export function rcodeName(rcode: number): string {
  return RCODE_NAMES[rcode] ?? `RCODE ${rcode}`;
}

export interface ResourceRecord {
  name: string;
  type: number;
  class: number;
  ttl: number;
  /** TXT: the character strings joined; NS/CNAME: the target; SOA: the primary server; A/AAAA: the address. */
  data: string;
  /** The record's raw RDATA. */
  rdata: Buffer;
}

export interface DnsMessage {
  id: number;
  /** Response bit, authoritative answer, truncated. */
  qr: boolean;
  aa: boolean;
  tc: boolean;
  rcode: number;
  questions: { name: string; type: number }[];
  answers: ResourceRecord[];
  authorities: ResourceRecord[];
  additionals: ResourceRecord[];
}

/** A TSIG key as the server knows it: its name, algorithm (hmac-sha256...) and secret. */
export interface TsigKey {
  name: string;
  algorithm: TsigAlgorithm;
  secret: Buffer;
}

export const TSIG_ALGORITHMS = {
  'hmac-md5': { wire: 'hmac-md5.sig-alg.reg.int', hash: 'md5' },
  'hmac-sha1': { wire: 'hmac-sha1', hash: 'sha1' },
  'hmac-sha224': { wire: 'hmac-sha224', hash: 'sha224' },
  'hmac-sha256': { wire: 'hmac-sha256', hash: 'sha256' },
  'hmac-sha384': { wire: 'hmac-sha384', hash: 'sha384' },
  'hmac-sha512': { wire: 'hmac-sha512', hash: 'sha512' },
} as const;
export type TsigAlgorithm = keyof typeof TSIG_ALGORITHMS;

// The time a signature is valid either side of its signing time; BIND and nsupdate use 300 s.
const TSIG_FUDGE_S = 300;

// ---------------------------------------------------------------------------------------------------
// Writing

/** The name in wire form, lower case, without compression (which is optional for writers). */
export function encodeName(name: string): Buffer {
  const trimmed = name.endsWith('.') ? name.slice(0, -1) : name;
  const parts: Buffer[] = [];
  if (trimmed !== '') {
    for (const label of trimmed.split('.')) {
      const bytes = Buffer.from(label.toLowerCase(), 'ascii');
      if (bytes.length === 0 || bytes.length > 63) throw new ProximationError('ERR_DNS_MALFORMED', `the DNS name ${JSON.stringify(name)} has an empty or over-long label.`);
      parts.push(Buffer.from([bytes.length]), bytes);
    }
  }
  parts.push(Buffer.from([0]));
  return Buffer.concat(parts);
}

function u16(value: number): Buffer {
  const b = Buffer.alloc(2);
  b.writeUInt16BE(value);
  return b;
}

function u32(value: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(value >>> 0);
  return b;
}

function header(id: number, flags: number, counts: [number, number, number, number]): Buffer {
  return Buffer.concat([u16(id), u16(flags), ...counts.map(u16)]);
}

function record(name: string, type: number, klass: number, ttl: number, rdata: Buffer): Buffer {
  return Buffer.concat([encodeName(name), u16(type), u16(klass), u32(ttl), u16(rdata.length), rdata]);
}

/** TXT RDATA: the value as character strings of at most 255 bytes each. */
export function txtRdata(value: string): Buffer {
  const bytes = Buffer.from(value, 'utf8');
  const parts: Buffer[] = [];
  for (let i = 0; i < bytes.length || i === 0; i += 255) {
    const chunk = bytes.subarray(i, i + 255);
    parts.push(Buffer.from([chunk.length]), chunk);
  }
  return Buffer.concat(parts);
}

/** A query for `name`/`type`; `recursionDesired` for resolvers, off for authoritative servers. */
export function buildQuery(id: number, name: string, type: number, recursionDesired: boolean): Buffer {
  return Buffer.concat([header(id, recursionDesired ? 0x0100 : 0, [1, 0, 0, 0]), encodeName(name), u16(type), u16(CLASS.IN)]);
}

export interface TxtChange {
  op: 'add' | 'delete';
  name: string;
  value: string;
  /** For additions. */
  ttl: number;
}

/**
 * An RFC 2136 UPDATE of `zone` without prerequisites: each addition adds one TXT record, each deletion
 * removes exactly the record with that value (class NONE), so other values at the same name (the base
 * name's and the wildcard's challenge at once, or another order's) stay.
 */
export function buildUpdate(id: number, zone: string, changes: readonly TxtChange[]): Buffer {
  const updates = changes.map((c) =>
    c.op === 'add' ? record(c.name, TYPE.TXT, CLASS.IN, c.ttl, txtRdata(c.value)) : record(c.name, TYPE.TXT, CLASS.NONE, 0, txtRdata(c.value)),
  );
  return Buffer.concat([header(id, OPCODE_UPDATE << 11, [1, 0, changes.length, 0]), encodeName(zone), u16(TYPE.SOA), u16(CLASS.IN), ...updates]);
}

/** The TSIG variables that follow the message in the MAC's input (RFC 8945 4.3.3). */
function tsigVariables(key: TsigKey, timeSigned: number, error: number, other: Buffer): Buffer {
  return Buffer.concat([
    encodeName(key.name),
    u16(CLASS.ANY),
    u32(0),
    encodeName(TSIG_ALGORITHMS[key.algorithm].wire),
    u16(Math.floor(timeSigned / 2 ** 32)),
    u32(timeSigned % 2 ** 32),
    u16(TSIG_FUDGE_S),
    u16(error),
    u16(other.length),
    other,
  ]);
}

function mac(key: TsigKey, ...parts: Buffer[]): Buffer {
  const hmac = createHmac(TSIG_ALGORITHMS[key.algorithm].hash, key.secret);
  for (const part of parts) hmac.update(part);
  return hmac.digest();
}

/** `message` with a TSIG record appended (ARCOUNT + 1), and the request MAC that the answer's MAC covers. */
export function signTsig(message: Buffer, key: TsigKey, now = Date.now()): { signed: Buffer; requestMac: Buffer } {
  const timeSigned = Math.floor(now / 1000);
  const digest = mac(key, message, tsigVariables(key, timeSigned, 0, Buffer.alloc(0)));
  const rdata = Buffer.concat([
    encodeName(TSIG_ALGORITHMS[key.algorithm].wire),
    u16(Math.floor(timeSigned / 2 ** 32)),
    u32(timeSigned % 2 ** 32),
    u16(TSIG_FUDGE_S),
    u16(digest.length),
    digest,
    message.subarray(0, 2),
    u16(0),
    u16(0),
  ]);
  const signed = Buffer.concat([message, record(key.name, TYPE.TSIG, CLASS.ANY, 0, rdata)]);
  signed.writeUInt16BE(message.readUInt16BE(10) + 1, 10);
  return { signed, requestMac: digest };
}

// ---------------------------------------------------------------------------------------------------
// Reading

function malformed(what: string): ProximationError {
  return new ProximationError('ERR_DNS_MALFORMED', `a DNS server sent a malformed message: ${what}.`);
}

/** The name at `offset` and where the bytes after it start; follows compression pointers. */
function readName(buf: Buffer, offset: number): { name: string; end: number } {
  const labels: string[] = [];
  let pos = offset;
  let end = -1;
  for (let jumps = 0; ; ) {
    if (pos >= buf.length) throw malformed('a name runs past the end');
    const len = buf[pos]!;
    if (len === 0) {
      if (end === -1) end = pos + 1;
      break;
    }
    if ((len & 0xc0) === 0xc0) {
      if (pos + 1 >= buf.length || ++jumps > 64) throw malformed('a bad compression pointer');
      if (end === -1) end = pos + 2;
      pos = ((len & 0x3f) << 8) | buf[pos + 1]!;
      continue;
    }
    if ((len & 0xc0) !== 0 || pos + 1 + len > buf.length) throw malformed('a bad label length');
    labels.push(buf.toString('latin1', pos + 1, pos + 1 + len));
    pos += 1 + len;
  }
  return { name: labels.join('.').toLowerCase(), end };
}

function readRecords(buf: Buffer, offset: number, count: number): { records: ResourceRecord[]; end: number } {
  const records: ResourceRecord[] = [];
  let pos = offset;
  for (let i = 0; i < count; i++) {
    const { name, end } = readName(buf, pos);
    if (end + 10 > buf.length) throw malformed('a record header runs past the end');
    const type = buf.readUInt16BE(end);
    const klass = buf.readUInt16BE(end + 2);
    const ttl = buf.readUInt32BE(end + 4);
    const length = buf.readUInt16BE(end + 8);
    const start = end + 10;
    if (start + length > buf.length) throw malformed('record data runs past the end');
    const rdata = buf.subarray(start, start + length);
    records.push({ name, type, class: klass, ttl, rdata, data: recordData(buf, type, start, rdata) });
    pos = start + length;
  }
  return { records, end: pos };
}

function recordData(buf: Buffer, type: number, start: number, rdata: Buffer): string {
  switch (type) {
    case TYPE.TXT: {
      const parts: string[] = [];
      for (let i = 0; i < rdata.length; ) {
        const len = rdata[i]!;
        parts.push(rdata.toString('utf8', i + 1, i + 1 + len));
        i += 1 + len;
      }
      return parts.join('');
    }
    case TYPE.NS:
    case TYPE.CNAME:
    case TYPE.SOA:
      return readName(buf, start).name;
    case TYPE.A:
      return rdata.length === 4 ? [...rdata].join('.') : '';
    case TYPE.AAAA:
      return rdata.length === 16 ? Array.from({ length: 8 }, (_, i) => rdata.readUInt16BE(i * 2).toString(16)).join(':') : '';
    default:
      return '';
  }
}

export function parseMessage(buf: Buffer): DnsMessage {
  if (buf.length < 12) throw malformed(`${buf.length} bytes are shorter than a header`);
  const flags = buf.readUInt16BE(2);
  const counts = [4, 6, 8, 10].map((o) => buf.readUInt16BE(o)) as [number, number, number, number];
  const questions: { name: string; type: number }[] = [];
  let pos = 12;
  for (let i = 0; i < counts[0]; i++) {
    const { name, end } = readName(buf, pos);
    if (end + 4 > buf.length) throw malformed('a question runs past the end');
    questions.push({ name, type: buf.readUInt16BE(end) });
    pos = end + 4;
  }
  const answers = readRecords(buf, pos, counts[1]);
  const authorities = readRecords(buf, answers.end, counts[2]);
  const additionals = readRecords(buf, authorities.end, counts[3]);
  const tsig = additionals.records.find((r) => r.type === TYPE.TSIG);
  // A TSIG error (BADSIG, BADKEY, BADTIME) is reported in the TSIG record, the header saying NOTAUTH.
  const tsigError = tsig === undefined ? 0 : tsigFields(buf, tsig).error;
  return {
    id: buf.readUInt16BE(0),
    qr: (flags & 0x8000) !== 0,
    aa: (flags & 0x0400) !== 0,
    tc: (flags & 0x0200) !== 0,
    rcode: tsigError !== 0 ? tsigError : flags & 0x000f,
    questions,
    answers: answers.records,
    authorities: authorities.records,
    additionals: additionals.records,
  };
}

interface TsigFields {
  algorithm: string;
  timeSigned: number;
  mac: Buffer;
  error: number;
  other: Buffer;
}

function tsigFields(buf: Buffer, rr: ResourceRecord): TsigFields {
  const start = rr.rdata.byteOffset - buf.byteOffset;
  const { name: algorithm, end } = readName(buf, start);
  const r = buf.subarray(end, start + rr.rdata.length);
  if (r.length < 10) throw malformed('a short TSIG record');
  const macLength = r.readUInt16BE(8);
  if (r.length < 16 + macLength) throw malformed('a short TSIG record');
  const after = 10 + macLength;
  const otherLength = r.readUInt16BE(after + 4);
  return {
    algorithm,
    timeSigned: r.readUInt16BE(0) * 2 ** 32 + r.readUInt32BE(2),
    mac: r.subarray(10, 10 + macLength),
    error: r.readUInt16BE(after + 2),
    other: r.subarray(after + 6, after + 6 + otherLength),
  };
}

/**
 * Whether the signed response `buf` carries the MAC `key` makes for it after the request MAC
 * (RFC 8945 4.3.3): proof that the answer came from a holder of the key and was not altered.
 */
export function verifyTsig(buf: Buffer, key: TsigKey, requestMac: Buffer): boolean {
  const message = parseMessage(buf);
  const last = message.additionals[message.additionals.length - 1];
  if (last === undefined || last.type !== TYPE.TSIG) return false;
  const fields = tsigFields(buf, last);
  // The MAC covers the message as it was before the TSIG record was added, which is the last record.
  let tsigStart = 12;
  for (let i = 0; i < message.questions.length; i++) tsigStart = readName(buf, tsigStart).end + 4;
  tsigStart = readRecords(buf, tsigStart, message.answers.length + message.authorities.length + message.additionals.length - 1).end;
  const unsigned = Buffer.from(buf.subarray(0, tsigStart));
  unsigned.writeUInt16BE(message.additionals.length - 1, 10);
  const expected = mac(
    key,
    u16(requestMac.length),
    requestMac,
    unsigned,
    tsigVariables(key, fields.timeSigned, fields.error, fields.other),
  );
  return expected.length === fields.mac.length && timingSafeEqual(expected, fields.mac);
}
