/**
 * Starts and ends every process the benchmark uses, optionally pinned to one CPU core with `taskset`.
 * Guarantees: each child leads its own process group (so nginx's workers die with their master), every
 * child is remembered until it has exited, `killAllSync()` SIGKILLs every remembered group (safe to call
 * from signal and exit handlers), and `run()` never waits longer than its timeout.
 * Throws `ProximationError`: `ERR_BENCH_TIMEOUT` when a run overstays, `ERR_BENCH_COMMAND` when a command
 * cannot start or exits non-zero (message carries the command line and the end of its output).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, fstatSync, openSync, readSync } from 'node:fs';
import { join } from 'node:path';
import { ProximationError } from '@proximation/shared';

export interface CommandSpec {
  /** Short label for logs and messages; also names the log file of long-running children. */
  readonly name: string;
  readonly command: string;
  readonly args: readonly string[];
  /** CPU core to pin to; unpinned when undefined. */
  readonly core?: number | undefined;
  readonly env?: NodeJS.ProcessEnv | undefined;
  readonly cwd?: string | undefined;
}

export interface RunResult {
  readonly stdout: string;
  readonly stderr: string;
}

export interface Service {
  readonly name: string;
  readonly pid: number;
  readonly logPath: string;
  /** Exit code or signal once the process has ended, undefined while it runs. */
  exitStatus(): string | undefined;
  /** The last lines of the service's combined stdout/stderr, for error messages. */
  logTail(): string;
}

const MAX_CAPTURE = 4 * 1024 * 1024;

function commandLine(spec: CommandSpec): string {
  return [spec.command, ...spec.args].map((a) => (/^[\w./:=,@-]+$/.test(a) ? a : JSON.stringify(a))).join(' ');
}

function tail(text: string, lines = 15): string {
  return text.trimEnd().split('\n').slice(-lines).join('\n');
}

/** The end of a log file without reading all of it (access logs grow to tens of MiB). */
function fileTail(path: string): string {
  const fd = openSync(path, 'r');
  try {
    const { size } = fstatSync(fd);
    const length = Math.min(size, 16 * 1024);
    const buffer = Buffer.alloc(length);
    readSync(fd, buffer, 0, length, size - length);
    return tail(buffer.toString('utf8'));
  } finally {
    closeSync(fd);
  }
}

export class ChildSupervisor {
  private readonly live = new Map<number, ChildProcess>();

  constructor(private readonly logDir: string) {}

  private spawnGroup(spec: CommandSpec, stdio: 'pipe' | number): ChildProcess {
    const [command, args] =
      spec.core === undefined
        ? [spec.command, spec.args]
        : ['taskset', ['-c', String(spec.core), spec.command, ...spec.args]];
    const child = spawn(command, args, {
      detached: true,
      env: spec.env ?? process.env,
      cwd: spec.cwd,
      stdio: stdio === 'pipe' ? ['ignore', 'pipe', 'pipe'] : ['ignore', stdio, stdio],
    });
    if (child.pid !== undefined) {
      const pid = child.pid;
      this.live.set(pid, child);
      child.once('exit', () => this.live.delete(pid));
    }
    return child;
  }

  /** Starts a long-running process whose output goes to `<logDir>/<name>.log`. */
  async start(spec: CommandSpec): Promise<Service> {
    const logPath = join(this.logDir, `${spec.name}.log`);
    const fd = openSync(logPath, 'a');
    let child: ChildProcess;
    try {
      child = this.spawnGroup(spec, fd);
    } finally {
      closeSync(fd);
    }
    await new Promise<void>((resolve, reject) => {
      child.once('spawn', resolve);
      child.once('error', (err) =>
        reject(new ProximationError('ERR_BENCH_COMMAND', `cannot start ${commandLine(spec)}: ${err.message}`)),
      );
    });
    let status: string | undefined;
    child.once('exit', (code, signal) => {
      status = signal ?? `exit code ${code}`;
    });
    return {
      name: spec.name,
      pid: child.pid as number,
      logPath,
      exitStatus: () => status,
      logTail: () => fileTail(logPath),
    };
  }

  /** SIGTERM to the service's group, SIGKILL after `graceMs`; resolves once the leader has exited. */
  async stop(service: Service, graceMs = 5_000): Promise<void> {
    const child = this.live.get(service.pid);
    if (child === undefined) return;
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    signalGroup(service.pid, 'SIGTERM');
    const timer = setTimeout(() => signalGroup(service.pid, 'SIGKILL'), graceMs);
    await exited;
    clearTimeout(timer);
    // Workers that outlived their master (should not happen) must not load the core during the next run.
    signalGroup(service.pid, 'SIGKILL');
  }

  /** Runs a command to completion and returns its output; rejects on non-zero exit or timeout. */
  run(spec: CommandSpec, timeoutMs: number): Promise<RunResult> {
    const child = this.spawnGroup(spec, 'pipe');
    return new Promise<RunResult>((resolve, reject) => {
      let stdout = '';
      let stderr = '';
      child.stdout?.setEncoding('utf8').on('data', (d: string) => {
        if (stdout.length < MAX_CAPTURE) stdout += d;
      });
      child.stderr?.setEncoding('utf8').on('data', (d: string) => {
        if (stderr.length < MAX_CAPTURE) stderr += d;
      });
      let timedOut = false;
      const timer = setTimeout(() => {
        timedOut = true;
        if (child.pid !== undefined) signalGroup(child.pid, 'SIGKILL');
      }, timeoutMs);
      child.once('error', (err) => {
        clearTimeout(timer);
        reject(new ProximationError('ERR_BENCH_COMMAND', `cannot run ${commandLine(spec)}: ${err.message}`));
      });
      child.once('close', (code, signal) => {
        clearTimeout(timer);
        if (timedOut) {
          reject(
            new ProximationError(
              'ERR_BENCH_TIMEOUT',
              `${commandLine(spec)} did not finish within ${timeoutMs} ms and was killed.`,
            ),
          );
        } else if (code !== 0) {
          reject(
            new ProximationError(
              'ERR_BENCH_COMMAND',
              `${commandLine(spec)} failed (${signal ?? `exit code ${code}`}):\n${tail(stderr + stdout)}`,
            ),
          );
        } else {
          resolve({ stdout, stderr });
        }
      });
    });
  }

  /** SIGKILLs every process group still alive; synchronous so that exit and signal handlers can use it. */
  killAllSync(): void {
    for (const pid of this.live.keys()) signalGroup(pid, 'SIGKILL');
  }
}

function signalGroup(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(-pid, signal);
  } catch (err) {
    // ESRCH: the group is already gone, which is what we wanted.
    if ((err as NodeJS.ErrnoException).code !== 'ESRCH') throw err;
  }
}
