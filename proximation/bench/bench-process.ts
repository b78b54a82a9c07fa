/**
 * What every benchmark entry point (run.ts, machine.ts, soak.ts) does around its measurements: checks
 * that the machine can run it (2 CPUs, localhost = 127.0.0.1), makes a temporary work directory with a
 * log directory, and guarantees that every process started through the ChildSupervisor is killed and
 * the directory removed on success, error, SIGINT and SIGTERM. Prints a failure with its code to stderr
 * and sets exit code 1 when `measure` throws or resolves false.
 */
import { rmSync } from 'node:fs';
import { chmod, mkdir, mkdtemp } from 'node:fs/promises';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { ProximationError, errorMessage } from '@proximation/shared';
import { ChildSupervisor } from './children.js';
import { checkLocalhost } from './load-generators.js';

export function progress(line: string): void {
  process.stderr.write(`${line}\n`);
}

async function prepareAndMeasure(measure: (children: ChildSupervisor, workDir: string) => Promise<boolean>): Promise<void> {
  if (cpus().length < 2) {
    throw new ProximationError(
      'ERR_BENCH_CONFIG',
      'the benchmark pins the proxy and the load to different cores; it needs at least 2 CPUs.',
    );
  }
  await checkLocalhost();
  const workDir = await mkdtemp(join(tmpdir(), 'proximation-bench-'));
  // nginx workers run as `nobody` when started by root and must read the upstream's files.
  await chmod(workDir, 0o755);
  const logDir = join(workDir, 'logs');
  await mkdir(logDir);
  const children = new ChildSupervisor(logDir);
  const cleanUp = (): void => {
    children.killAllSync();
    rmSync(workDir, { recursive: true, force: true });
  };
  const onSignal = (signal: NodeJS.Signals, exitCode: number) => (): void => {
    progress(`${signal}: stopping every process the benchmark started.`);
    cleanUp();
    process.exit(exitCode);
  };
  process.once('SIGINT', onSignal('SIGINT', 130));
  process.once('SIGTERM', onSignal('SIGTERM', 143));
  process.once('exit', () => children.killAllSync());
  try {
    if (!(await measure(children, workDir))) process.exitCode = 1;
  } finally {
    cleanUp();
  }
}

export function benchMain(measure: (children: ChildSupervisor, workDir: string) => Promise<boolean>): void {
  prepareAndMeasure(measure).catch((err: unknown) => {
    const code = err instanceof ProximationError ? `${err.code}: ` : '';
    process.stderr.write(`bench failed: ${code}${errorMessage(err)}\n`);
    process.exitCode = 1;
  });
}
