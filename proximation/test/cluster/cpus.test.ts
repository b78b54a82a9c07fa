import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { availableCpus, parseCpuMax } from '../../src/cluster/cpus.js';
import { distributionFor, supportsReusePort } from '../../src/cluster/distribution.js';
import { loadConfig } from '../../src/config.js';
import { managed, tempDir } from '../support/fixtures.js';

const resources = managed();

async function cgroupRoot(files: Record<string, string>): Promise<string> {
  const dir = await tempDir();
  resources.defer(() => dir.close());
  for (const [name, text] of Object.entries(files)) {
    await fs.mkdir(path.dirname(path.join(dir.path, name)), { recursive: true });
    await fs.writeFile(path.join(dir.path, name), text);
  }
  return dir.path;
}

describe('the CPUs this process may use', () => {
  it('reads the cgroup v2 quota, rounding a fractional CPU up', () => {
    expect(parseCpuMax('max 100000\n')).toBeUndefined();
    expect(parseCpuMax('200000 100000\n')).toBe(2);
    expect(parseCpuMax('150000 100000\n')).toBe(2);
    expect(parseCpuMax('50000 100000\n')).toBe(1);
    expect(parseCpuMax('garbage')).toBeUndefined();
  });

  it('takes the quota of cgroup v2, else v1, and never more than os.availableParallelism()', async () => {
    const cpus = os.availableParallelism();
    expect(availableCpus(await cgroupRoot({ 'cpu.max': '100000 100000\n' }))).toBe(1);
    expect(availableCpus(await cgroupRoot({ 'cpu.max': 'max 100000\n' }))).toBe(cpus);
    expect(availableCpus(await cgroupRoot({ 'cpu.max': `${(cpus + 8) * 100000} 100000\n` }))).toBe(cpus);
    expect(availableCpus(await cgroupRoot({ 'cpu/cpu.cfs_quota_us': '100000\n', 'cpu/cpu.cfs_period_us': '100000\n' }))).toBe(1);
    expect(availableCpus(await cgroupRoot({ 'cpu/cpu.cfs_quota_us': '-1\n', 'cpu/cpu.cfs_period_us': '100000\n' }))).toBe(cpus);
    expect(availableCpus(await cgroupRoot({}))).toBe(cpus);
  });

  it('is the default of PROXIMATION_WORKERS', () => {
    expect(loadConfig({}, {}).workers).toBe(availableCpus());
    expect(loadConfig({}, { PROXIMATION_WORKERS: '1' }).workers).toBe(1);
    expect(() => loadConfig({}, { PROXIMATION_WORKERS: '0' })).toThrow(/PROXIMATION_WORKERS="0" is not valid/);
  });
});

describe('how connections reach the workers', () => {
  it('uses SO_REUSEPORT from Node 22.12 and 23.1 on, node:cluster before, and node:cluster for port 0', () => {
    expect(['20.19.0', '22.11.0', '23.0.0'].map((v) => supportsReusePort(v))).toEqual([false, false, false]);
    expect(['22.12.0', '23.1.0', '24.0.0', '26.10.0'].map((v) => supportsReusePort(v))).toEqual([true, true, true, true]);
    expect(distributionFor({ httpPort: 80, httpsPort: 443 }, '26.10.0')).toBe('reuseport');
    expect(distributionFor({ httpPort: 0, httpsPort: 443 }, '26.10.0')).toBe('cluster');
    expect(distributionFor({ httpPort: 80, httpsPort: 443 }, '20.19.0')).toBe('cluster');
  });
});
