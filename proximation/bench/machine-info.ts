/**
 * Describes the machine and software versions a run used, for the JSON results. Every version comes
 * from the tool itself. Throws what `ChildSupervisor.run` throws when a required tool is missing.
 */
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { cpus, release } from 'node:os';
import type { ChildSupervisor } from './children.js';

export interface MachineInfo {
  readonly cpuModel: string;
  readonly cpus: number;
  readonly kernel: string;
  readonly node: string;
  readonly nginx: string;
  readonly caddy: string;
  readonly wrk: string;
  readonly h2load: string;
  readonly httpProxy: string;
  readonly clockTicksPerSecond: number;
}

function firstLine(text: string): string {
  return text.trim().split('\n')[0]?.trim() ?? '';
}

export async function describeMachine(children: ChildSupervisor): Promise<MachineInfo> {
  const ask = async (command: string, args: string[]): Promise<string> => {
    const { stdout, stderr } = await children.run({ name: command, command, args }, 10_000);
    return firstLine(stdout || stderr);
  };
  const cpuinfo = readFileSync('/proc/cpuinfo', 'utf8');
  const require = createRequire(import.meta.url);
  const httpProxyPackage = JSON.parse(readFileSync(require.resolve('http-proxy/package.json'), 'utf8')) as {
    version: string;
  };
  // wrk has no version flag: `wrk -v` prints its banner and usage, then exits 1.
  const wrk = await children
    .run({ name: 'wrk', command: 'sh', args: ['-c', 'wrk -v 2>&1; true'] }, 10_000)
    .then((r) => firstLine(r.stdout));
  return {
    cpuModel: /^model name\s*:\s*(.*)$/m.exec(cpuinfo)?.[1] ?? 'unknown',
    cpus: cpus().length,
    kernel: release(),
    node: process.version,
    nginx: await ask('nginx', ['-v']),
    caddy: await ask('caddy', ['version']),
    wrk,
    h2load: await ask('h2load', ['--version']),
    httpProxy: httpProxyPackage.version,
    clockTicksPerSecond: Number(await ask('getconf', ['CLK_TCK'])),
  };
}
