/**
 * The process's one pino logger. Parts log through child loggers (`logger.child({ part: 'routes' })`).
 * JSON lines go to stdout through an asynchronous destination (sonic-boom), so an access line costs the
 * request path a serialisation and a buffer append; writes are batched while one is in progress, and
 * nothing waits for a buffer to fill, so a quiet proxy's lines still appear at once. On a terminal
 * (or with format `pretty`) lines are made readable by pino-pretty instead.
 */
import { createRequire } from 'node:module';
import { pino, type Logger } from 'pino';
import type PinoPretty from 'pino-pretty';
import type { LogFormat } from './config.js';

export type { Logger };

export interface LoggerOptions {
  level: string;
  format: LogFormat | undefined;
  /** Where lines go; stdout by default. Tests pass a stream to read them. */
  destination?: NodeJS.WritableStream;
}

export function createLogger(options: LoggerOptions): Logger {
  const format = options.format ?? (process.stdout.isTTY ? 'pretty' : 'json');
  const base = { level: options.level, base: undefined, timestamp: pino.stdTimeFunctions.isoTime };
  if (format === 'pretty') {
    // Required only here: a service logging JSON never pays for the formatter's modules (4 MiB).
    const pinoPretty = createRequire(import.meta.url)('pino-pretty') as typeof PinoPretty;
    return pino(base, pinoPretty({ colorize: process.stdout.isTTY === true, destination: options.destination ?? 1, sync: true }));
  }
  return pino(base, options.destination ?? pino.destination({ dest: 1, sync: false }));
}
