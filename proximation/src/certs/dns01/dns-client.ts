/**
 * Sending one DNS message to one server and getting its answer: over UDP, retried on silence, and over
 * TCP when the answer is truncated (or `tcp` is asked for, as for signed updates, which must not be
 * applied twice by a retransmission the server already answered).
 *
 * Guarantees: the answer returned has the request's id and the response bit; anything else on the
 * socket is ignored. Throws ProximationError ERR_DNS_UNREACHABLE naming the server when it does not
 * answer within `timeoutMs` per attempt (ATTEMPTS attempts over UDP, one over TCP) or refuses the
 * connection; ERR_DNS_MALFORMED for an answer that does not parse.
 */
import dgram from 'node:dgram';
import dns from 'node:dns';
import { randomInt } from 'node:crypto';
import net from 'node:net';
import { ProximationError, errorMessage } from '@proximation/shared';
import { buildQuery, parseMessage, type DnsMessage } from './dns-message.js';

export interface DnsServer {
  host: string;
  port: number;
}

const ATTEMPTS = 3;
export const DNS_TIMEOUT_MS = 2000;

export function describeServer(server: DnsServer): string {
  return net.isIPv6(server.host) ? `[${server.host}]:${server.port}` : `${server.host}:${server.port}`;
}

/** Parses `host`, `host:port` or `[v6]:port`; `defaultPort` when none is given. */
export function parseServer(text: string, defaultPort: number): DnsServer | undefined {
  const bracketed = /^\[([^\]]+)\](?::(\d+))?$/.exec(text);
  const plain = /^([^:[\]]+)(?::(\d+))?$/.exec(text);
  const host = bracketed?.[1] ?? (plain?.[1] ?? (net.isIPv6(text) ? text : undefined));
  const portText = bracketed?.[2] ?? plain?.[2];
  const port = portText === undefined ? defaultPort : Number(portText);
  if (host === undefined || host === '' || !Number.isInteger(port) || port < 1 || port > 65535) return undefined;
  return { host, port };
}

/** The resolvers the system uses (/etc/resolv.conf), as Node read them at start. */
export function systemResolvers(): DnsServer[] {
  return dns.getServers().flatMap((entry) => parseServer(entry, 53) ?? []);
}

export function newMessageId(): number {
  return randomInt(0, 0x10000);
}

/** The answer of `server` to `message` (whose first two bytes are its id). */
export async function exchange(server: DnsServer, message: Buffer, options: { tcp?: boolean; timeoutMs?: number } = {}): Promise<{ bytes: Buffer; parsed: DnsMessage }> {
  const timeoutMs = options.timeoutMs ?? DNS_TIMEOUT_MS;
  const id = message.readUInt16BE(0);
  if (options.tcp !== true && message.length <= 512) {
    const udp = await exchangeUdp(server, message, id, timeoutMs);
    if (!udp.parsed.tc) return udp;
  }
  return exchangeTcp(server, message, id, timeoutMs);
}

/** A query for `name`/`type` to `server`, parsed. */
export function query(server: DnsServer, name: string, type: number, recursionDesired: boolean, timeoutMs?: number): Promise<DnsMessage> {
  return exchange(server, buildQuery(newMessageId(), name, type, recursionDesired), timeoutMs === undefined ? {} : { timeoutMs }).then((answer) => answer.parsed);
}

function unreachable(server: DnsServer, why: string): ProximationError {
  return new ProximationError('ERR_DNS_UNREACHABLE', `the DNS server ${describeServer(server)} ${why}; check that it runs and that this host may reach it.`);
}

function exchangeUdp(server: DnsServer, message: Buffer, id: number, timeoutMs: number): Promise<{ bytes: Buffer; parsed: DnsMessage }> {
  return new Promise((resolve, reject) => {
    const socket = dgram.createSocket(net.isIPv6(server.host) ? 'udp6' : 'udp4');
    let attempt = 0;
    let timer: NodeJS.Timeout | undefined;
    const finish = (err: Error | undefined, value?: { bytes: Buffer; parsed: DnsMessage }): void => {
      clearTimeout(timer);
      socket.close();
      if (err !== undefined) reject(err);
      else resolve(value!);
    };
    const send = (): void => {
      if (++attempt > ATTEMPTS) {
        finish(unreachable(server, `did not answer over UDP within ${ATTEMPTS} × ${timeoutMs} ms`));
        return;
      }
      socket.send(message, server.port, server.host);
      timer = setTimeout(send, timeoutMs);
    };
    socket.on('message', (bytes) => {
      if (bytes.length < 12 || bytes.readUInt16BE(0) !== id || (bytes[2]! & 0x80) === 0) return;
      try {
        finish(undefined, { bytes, parsed: parseMessage(bytes) });
      } catch (err) {
        finish(err as Error);
      }
    });
    socket.on('error', (err) => finish(unreachable(server, `could not be reached over UDP (${errorMessage(err)})`)));
    send();
  });
}

function exchangeTcp(server: DnsServer, message: Buffer, id: number, timeoutMs: number): Promise<{ bytes: Buffer; parsed: DnsMessage }> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ host: server.host, port: server.port });
    let received = Buffer.alloc(0);
    const timer = setTimeout(() => {
      socket.destroy();
      reject(unreachable(server, `did not answer over TCP within ${timeoutMs} ms`));
    }, timeoutMs);
    socket.on('connect', () => {
      const length = Buffer.alloc(2);
      length.writeUInt16BE(message.length);
      socket.write(Buffer.concat([length, message]));
    });
    socket.on('data', (chunk: Buffer) => {
      received = Buffer.concat([received, chunk]);
      if (received.length < 2 || received.length < 2 + received.readUInt16BE(0)) return;
      clearTimeout(timer);
      socket.destroy();
      const bytes = received.subarray(2, 2 + received.readUInt16BE(0));
      try {
        const parsed = parseMessage(bytes);
        if (parsed.id !== id) throw new ProximationError('ERR_DNS_MALFORMED', `${describeServer(server)} answered with id ${parsed.id}, not ${id}.`);
        resolve({ bytes, parsed });
      } catch (err) {
        reject(err as Error);
      }
    });
    socket.on('error', (err) => {
      clearTimeout(timer);
      reject(unreachable(server, `could not be reached over TCP (${errorMessage(err)})`));
    });
    socket.on('close', () => {
      clearTimeout(timer);
      reject(unreachable(server, 'closed the TCP connection without an answer'));
    });
  });
}
