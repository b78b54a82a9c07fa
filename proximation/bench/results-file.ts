/**
 * The JSON results of a run (`results/latest.json` next to the bench sources) and its atomic write:
 * temp file in the same directory, fsync, rename, so a reader never sees half a file.
 * Throws the file system's error when the directory is not writable.
 */
import { open, rename } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { BenchConfig } from './config.js';
import type { MachineInfo } from './machine-info.js';
import type { ProxySummary, TargetCheck } from './summary.js';

export interface BenchResults {
  readonly startedAt: string;
  readonly finishedAt: string;
  /** Why the run stopped before all rounds, or null when it completed. */
  readonly incomplete: string | null;
  readonly settings: BenchConfig & {
    /** null: unpinned (the whole-machine rows). */
    readonly proxyCore: number | null;
    readonly loadCore: number | null;
    readonly wrk: string;
    readonly h2load: string;
  };
  readonly machine: MachineInfo;
  readonly proxies: readonly ProxySummary[];
  readonly targets: readonly TargetCheck[];
  readonly markdown: string;
}

/** Compiled code lives in proximation/dist-bench; results belong with the sources in proximation/bench. */
export const LATEST_RESULTS = fileURLToPath(new URL('../bench/results/latest.json', import.meta.url));
/** The whole-machine rows (machine.ts). */
export const MACHINE_RESULTS = fileURLToPath(new URL('../bench/results/machine.json', import.meta.url));

export async function writeResults(path: string, results: BenchResults): Promise<void> {
  const temp = join(dirname(path), `.${process.pid}.tmp`);
  const file = await open(temp, 'w');
  try {
    await file.writeFile(`${JSON.stringify(results, null, 2)}\n`);
    await file.sync();
  } finally {
    await file.close();
  }
  await rename(temp, path);
}
