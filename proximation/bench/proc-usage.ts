/**
 * CPU time and resident memory of a process and all its descendants, from /proc (Linux only).
 * CPU is utime+stime of every thread (clock ticks, converted with the rate given); memory is the sum of
 * VmRSS. Processes that end between two reads are skipped, never an error. Also the busy time of one
 * CPU core (from /proc/stat), to tell how much else ran on the proxy's core. Throws
 * `ProximationError('ERR_BENCH_PROC')` when the root process itself cannot be read.
 */
import { readFileSync, readdirSync } from 'node:fs';
import { ProximationError } from '@proximation/shared';

interface StatLine {
  readonly ppid: number;
  readonly ticks: number;
}

function readStat(pid: number): StatLine | undefined {
  let text: string;
  try {
    text = readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return undefined;
  }
  // The command name (field 2) may hold spaces and parentheses: fields are counted after the last ')'.
  const fields = text.slice(text.lastIndexOf(')') + 2).split(' ');
  // After the name: state(3) ppid(4) ... utime(14) stime(15), so index = field number - 3.
  return { ppid: Number(fields[1]), ticks: Number(fields[11]) + Number(fields[12]) };
}

/** The root and every process below it. */
function processTree(root: number): Map<number, StatLine> {
  const all = new Map<number, StatLine>();
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const stat = readStat(Number(entry));
    if (stat !== undefined) all.set(Number(entry), stat);
  }
  if (!all.has(root)) {
    throw new ProximationError('ERR_BENCH_PROC', `/proc/${root}/stat is unreadable: the proxy process has gone.`);
  }
  const tree = new Map<number, StatLine>([[root, all.get(root) as StatLine]]);
  // Each pass adds one generation; process trees here are two levels deep (nginx master + worker).
  for (let depth = 0; depth < 8; depth++) {
    const before = tree.size;
    for (const [pid, stat] of all) if (!tree.has(pid) && tree.has(stat.ppid)) tree.set(pid, stat);
    if (tree.size === before) break;
  }
  return tree;
}

export type CpuSnapshot = ReadonlyMap<number, number>;

export function cpuSnapshot(root: number): CpuSnapshot {
  return new Map([...processTree(root)].map(([pid, stat]) => [pid, stat.ticks]));
}

/** CPU seconds used by the tree between two snapshots (processes born in between count from zero). */
export function cpuSecondsBetween(before: CpuSnapshot, after: CpuSnapshot, ticksPerSecond: number): number {
  let ticks = 0;
  for (const [pid, now] of after) ticks += now - (before.get(pid) ?? 0);
  return ticks / ticksPerSecond;
}

function vmRssKiB(pid: number): number {
  try {
    const match = /^VmRSS:\s+(\d+) kB$/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return match === null ? 0 : Number(match[1]);
  } catch {
    return 0;
  }
}

export function rssMiB(root: number): number {
  let kib = 0;
  for (const pid of processTree(root).keys()) kib += vmRssKiB(pid);
  return kib / 1024;
}

/**
 * Non-idle time of one core so far, in seconds (user, nice, system, irq, softirq, steal); of every core
 * together when `core` is undefined (a proxy given the whole machine).
 */
export function coreBusySeconds(core: number | undefined, ticksPerSecond: number): number {
  const name = `cpu${core ?? ''}`;
  const line = new RegExp(`^${name} +(.*)$`, 'm').exec(readFileSync('/proc/stat', 'utf8'));
  if (line === null) throw new ProximationError('ERR_BENCH_PROC', `/proc/stat has no line for ${name}.`);
  const [user, nice, system, , , irq, softirq, steal] = (line[1] as string).trim().split(/\s+/).map(Number);
  return ((user ?? 0) + (nice ?? 0) + (system ?? 0) + (irq ?? 0) + (softirq ?? 0) + (steal ?? 0)) / ticksPerSecond;
}
