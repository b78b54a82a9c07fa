/**
 * DNS-01 through commands the operator gives, run the way certbot runs its `--manual-auth-hook` and
 * `--manual-cleanup-hook` (with /bin/sh, and certbot's variable names), so a hook written for certbot, and
 * any DNS provider's CLI, works here unchanged:
 *
 *   CERTBOT_DOMAIN        the name being validated (example.com for *.example.com too)
 *   CERTBOT_VALIDATION    the TXT value
 *   CERTBOT_ALL_DOMAINS   the names of the order, comma-separated (here: the validated name)
 *   CERTBOT_REMAINING_CHALLENGES   0: each challenge is presented on its own
 *   CERTBOT_AUTH_OUTPUT   to the cleanup hook: what the auth hook printed
 *   ACME_CHALLENGE_RECORD    where the record goes (_acme-challenge.<domain>, or a CNAME's target)
 *
 * A hook that exits non-zero, or runs longer than the bound (it and everything it started are then
 * killed with SIGKILL), throws ProximationError ERR_DNS_HOOK_FAILED naming the hook, the exit status or
 * the bound, and the end of its standard error. The environment is the process's own plus these.
 */
import { spawn } from 'node:child_process';
import { ProximationError } from '@proximation/shared';
import type { ConfValue } from '../renewal-conf.js';
import type { DnsProvider, TxtRecord } from './provider.js';

const OUTPUT_LIMIT = 64 * 1024;
const STDERR_SHOWN = 500;

export function openHookProvider(authHook: string, cleanupHook: string, timeoutMs: number): DnsProvider {
  const authOutput = new Map<string, string>();
  const key = (record: TxtRecord): string => `${record.name}\n${record.value}`;
  return {
    name: 'hook',
    async present(record) {
      authOutput.set(key(record), await runHook('auth', authHook, record, timeoutMs, undefined));
    },
    async cleanup(record) {
      try {
        await runHook('cleanup', cleanupHook, record, timeoutMs, authOutput.get(key(record)) ?? '');
      } finally {
        authOutput.delete(key(record));
      }
    },
    renewalParams(): [string, ConfValue][] {
      return [['authenticator', 'manual'], ['manual_auth_hook', authHook], ['manual_cleanup_hook', cleanupHook]];
    },
  };
}

function runHook(which: 'auth' | 'cleanup', command: string, record: TxtRecord, timeoutMs: number, authOutput: string | undefined): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn('/bin/sh', ['-c', command], {
      // Its own process group, so a timeout kills what the hook started too (nsupdate, curl...).
      detached: true,
      stdio: ['ignore', 'pipe', 'pipe'],
      env: {
        ...process.env,
        CERTBOT_DOMAIN: record.domain,
        CERTBOT_VALIDATION: record.value,
        CERTBOT_ALL_DOMAINS: record.domain,
        CERTBOT_REMAINING_CHALLENGES: '0',
        ACME_CHALLENGE_RECORD: record.name,
        ...(authOutput === undefined ? {} : { CERTBOT_AUTH_OUTPUT: authOutput }),
      },
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c: Buffer) => (stdout = (stdout + c.toString()).slice(-OUTPUT_LIMIT)));
    child.stderr.on('data', (c: Buffer) => (stderr = (stderr + c.toString()).slice(-OUTPUT_LIMIT)));
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      try {
        process.kill(-child.pid!, 'SIGKILL');
      } catch {
        // Already gone.
      }
    }, timeoutMs);
    const fail = (what: string): ProximationError => {
      const tail = stderr.trim().slice(-STDERR_SHOWN);
      return new ProximationError(
        'ERR_DNS_HOOK_FAILED',
        `the DNS ${which} hook for ${record.name} (${command}) ${what}${tail === '' ? '' : `; it printed: ${tail}`}. ` +
          `Fix the hook (PROXIMATION_DNS_HOOK_${which === 'auth' ? 'AUTH' : 'CLEANUP'}); it gets CERTBOT_DOMAIN, CERTBOT_VALIDATION and ACME_CHALLENGE_RECORD.`,
      );
    };
    child.once('error', (err) => {
      clearTimeout(timer);
      reject(fail(`could not be started (${err.message})`));
    });
    child.once('close', (code, signal) => {
      clearTimeout(timer);
      if (timedOut) reject(fail(`ran longer than ${timeoutMs} ms and was killed`));
      else if (code !== 0) reject(fail(code === null ? `was killed by ${signal}` : `exited with status ${code}`));
      else resolve(stdout.trim());
    });
  });
}
