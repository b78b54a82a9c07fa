/**
 * Logs a repeated operation's failures as outages, not as a line per attempt: the first failure after a
 * success is logged at error level with its error, the ones after it are not (a storage that is away
 * for a minute would otherwise log one line per poll), and the first success after failures is logged
 * at info level with how many attempts failed. Never throws.
 */
import { errorMessage } from '@proximation/shared';
import type { Logger } from './logger.js';

export interface OutageLog {
  failed(err: unknown): void;
  succeeded(): void;
}

export function outageLog(log: Logger, failure: string, recovery: string): OutageLog {
  let failures = 0;
  return {
    failed(err) {
      if (failures === 0) log.error({ err: errorMessage(err) }, failure);
      failures += 1;
    },
    succeeded() {
      if (failures > 0) log.info({ failedAttempts: failures }, recovery);
      failures = 0;
    },
  };
}
