/**
 * Runs one nginx instance from a generated configuration inside its own directory (pid file, error log,
 * temp paths), in the foreground so that the supervisor owns it. Shared by the upstream and the nginx
 * proxy under test: one worker process unless `workerProcesses` says otherwise, no access log. Guarantees nothing is written outside `dir`.
 * Throws what `ChildSupervisor.start` throws.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { ChildSupervisor, Service } from './children.js';

export interface NginxInstance {
  readonly name: string;
  readonly dir: string;
  readonly core: number | undefined;
  /** `worker_processes`: 1 unless set; `auto` is one per CPU. */
  readonly workerProcesses?: number | 'auto';
  /** Directives placed inside `http { }`. */
  readonly httpBlock: string;
}

export async function startNginx(children: ChildSupervisor, instance: NginxInstance): Promise<Service> {
  const { dir } = instance;
  await mkdir(join(dir, 'temp'), { recursive: true });
  const temp = (kind: string): string => `${kind}_temp_path ${join(dir, 'temp', kind)};`;
  const conf = join(dir, 'nginx.conf');
  const errorLog = join(dir, 'error.log');
  await writeFile(
    conf,
    [
      `worker_processes ${instance.workerProcesses ?? 1};`,
      `pid ${join(dir, 'nginx.pid')};`,
      `error_log ${errorLog} warn;`,
      'events { worker_connections 4096; }',
      'http {',
      '  access_log off;',
      ...['client_body', 'proxy', 'fastcgi', 'uwsgi', 'scgi'].map((k) => `  ${temp(k)}`),
      instance.httpBlock,
      '}',
      '',
    ].join('\n'),
  );
  return children.start({
    name: instance.name,
    command: 'nginx',
    args: ['-p', `${dir}/`, '-c', conf, '-e', errorLog, '-g', 'daemon off;'],
    core: instance.core,
  });
}
