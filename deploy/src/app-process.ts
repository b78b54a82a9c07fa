/**
 * The app `deploy run` supervises: started as its child with the same stdin, stdout and stderr and
 * environment, so its logs go where the task's go. `startApp` resolves once the process is running,
 * and rejects with ProximationError ERR_APP_START when it cannot be started (no such command, not
 * executable), naming the command.
 *
 * `exited` resolves once the app is gone (never rejects) with its exit code, or the signal that
 * ended it; `exitStatus` turns that into the status a shell would report: the code, or 128 plus the
 * signal's number. `signal` sends a signal unless the app has exited (then it does nothing).
 * `stop` sends SIGTERM and, if the app is still there after `graceMs`, SIGKILL, and resolves with the
 * exit.
 */
import { spawn } from 'node:child_process';
import { constants } from 'node:os';
import { ProximationError, errorMessage } from '@proximation/shared';

export interface AppExit {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
}

export interface AppProcess {
  readonly pid: number;
  readonly exited: Promise<AppExit>;
  signal(signal: NodeJS.Signals): void;
  stop(graceMs: number): Promise<AppExit>;
}

export function exitStatus(exit: AppExit): number {
  if (exit.signal !== null) return 128 + (constants.signals[exit.signal] ?? 0);
  return exit.code ?? 1;
}

/** "exited with status 3", "was killed by SIGKILL" */
export function describeExit(exit: AppExit): string {
  return exit.signal !== null ? `was ended by ${exit.signal}` : `exited with status ${exit.code ?? 'unknown'}`;
}

export function startApp(command: string, args: readonly string[], env: NodeJS.ProcessEnv): Promise<AppProcess> {
  const child = spawn(command, args, { stdio: 'inherit', env });
  let done: AppExit | undefined;
  const exited = new Promise<AppExit>((resolve) => {
    child.once('exit', (code, signal) => {
      done = { code, signal };
      resolve(done);
    });
  });
  const signal = (name: NodeJS.Signals) => {
    if (done === undefined) child.kill(name);
  };
  const app: AppProcess = {
    get pid() {
      return child.pid ?? 0;
    },
    exited,
    signal,
    async stop(graceMs) {
      signal('SIGTERM');
      const timer = setTimeout(() => signal('SIGKILL'), graceMs);
      try {
        return await exited;
      } finally {
        clearTimeout(timer);
      }
    },
  };
  return new Promise((resolve, reject) => {
    child.once('spawn', () => resolve(app));
    child.once('error', (err) => {
      if (child.pid === undefined) reject(new ProximationError('ERR_APP_START', `Could not start the app ${JSON.stringify(command)}: ${errorMessage(err)}. Check the command after "--" (is it installed, on PATH, executable?).`, { cause: err }));
    });
  });
}
