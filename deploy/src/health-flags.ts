/**
 * The health check as the commands that activate versions (register, activate) present it: its flags
 * (path and timeout, or --no-health-check) and the wording of a failed check. `healthCheckFromFlags`
 * returns the options of the check, or undefined when it is switched off; malformed values are usage
 * errors. `explainHealthFailure` rewords a failed check (HealthCheckFailedError, whoever ran it) with
 * the command's own account of what happened and what to do, so the message is the same in file and
 * API mode; other errors pass unchanged.
 */
import { HealthCheckFailedError, healthCheckFailed, isHealthCheckPath } from '@proximation/shared';
import type { HealthCheckOptions } from '@proximation/shared';
import { durationFlag, usageError } from './command-line.js';

export const HEALTH_OPTIONS = {
  'health-path': { type: 'string' },
  'health-timeout': { type: 'string' },
  'no-health-check': { type: 'boolean' },
} as const;

export const DEFAULT_HEALTH_PATH = '/';
export const DEFAULT_HEALTH_TIMEOUT = '30s';

export const HEALTH_OPTIONS_HELP = `  --health-path <path>   what the health check requests on every upstream (default ${DEFAULT_HEALTH_PATH});
                         it passes on a 2xx or 3xx answer
  --health-timeout <d>   how long the upstreams have to pass, retrying every 250ms
                         (default ${DEFAULT_HEALTH_TIMEOUT}; such as 500ms, 10s, 2m)
  --no-health-check      send traffic to the upstreams without checking them first`;

interface HealthFlags {
  'health-path'?: string | undefined;
  'health-timeout'?: string | undefined;
  'no-health-check'?: boolean | undefined;
}

export function healthCheckFromFlags(values: HealthFlags, command: string): HealthCheckOptions | undefined {
  const path = values['health-path'];
  const timeout = values['health-timeout'];
  if (values['no-health-check'] === true) {
    if (path !== undefined || timeout !== undefined) {
      throw usageError(`--no-health-check contradicts ${path !== undefined ? '--health-path' : '--health-timeout'}; give one or the other.`, command);
    }
    return undefined;
  }
  const healthPath = path ?? DEFAULT_HEALTH_PATH;
  if (!isHealthCheckPath(healthPath)) {
    throw usageError(`Invalid --health-path ${JSON.stringify(healthPath)}: give a path starting with a single "/", such as /healthz (a query is allowed).`, command);
  }
  return { path: healthPath, timeoutMs: durationFlag(timeout ?? DEFAULT_HEALTH_TIMEOUT, '--health-timeout', command) };
}

/** For `.catch()`: rethrows a failed check as `healthCheckFailed(lead, results, health, after)`. */
export function explainHealthFailure(lead: string, health: HealthCheckOptions, after: string): (err: unknown) => never {
  return (err) => {
    throw err instanceof HealthCheckFailedError ? healthCheckFailed(lead, err.results, health, after) : err;
  };
}
