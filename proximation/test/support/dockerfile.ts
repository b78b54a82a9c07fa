/**
 * What a Dockerfile's last stage tells a container runtime: base image, environment, volumes, user,
 * exposed ports, health check, stop signal, entrypoint and command; for tests that hold other
 * descriptions of the same container (an ECS task definition) against the image.
 *
 * Reads the instructions this repository's Dockerfiles use, in their JSON (exec) forms where Docker has
 * two; `ARG` defaults are substituted into `FROM`. Throws, naming the instruction, on a form it does not read
 * (shell-form HEALTHCHECK or ENTRYPOINT, `ENV name value` without `=`, an option it does not know).
 */
import { parseDuration } from '@proximation/shared';

export interface ImageHealthCheck {
  /** The exec form, without the leading "CMD". */
  command: string[];
  intervalMs: number;
  timeoutMs: number;
  startPeriodMs: number;
  retries: number;
}

export interface ImageConfig {
  /** The final stage's FROM, with build-argument defaults substituted. */
  base: string;
  env: Record<string, string>;
  volumes: string[];
  user: string | undefined;
  exposedPorts: number[];
  healthCheck: ImageHealthCheck | undefined;
  stopSignal: string | undefined;
  entrypoint: string[];
  cmd: string[];
}

/** Docker's HEALTHCHECK defaults. */
const HEALTH_DEFAULTS = { intervalMs: 30_000, timeoutMs: 30_000, startPeriodMs: 0, retries: 3 };

function execForm(instruction: string, text: string): string[] {
  const parsed: unknown = text.startsWith('[') ? JSON.parse(text) : undefined;
  if (!Array.isArray(parsed) || !parsed.every((a) => typeof a === 'string')) throw new Error(`${instruction} ${text}: only the JSON (exec) form is read`);
  return parsed as string[];
}

function healthCheck(text: string): ImageHealthCheck {
  const check = { ...HEALTH_DEFAULTS, command: [] as string[] };
  let rest = text;
  for (let option = /^--([a-z-]+)=(\S+)\s+/.exec(rest); option !== null; option = /^--([a-z-]+)=(\S+)\s+/.exec(rest)) {
    const [whole, name = '', value = ''] = option;
    if (name === 'interval') check.intervalMs = parseDuration(value, 'HEALTHCHECK --interval');
    else if (name === 'timeout') check.timeoutMs = parseDuration(value, 'HEALTHCHECK --timeout');
    else if (name === 'start-period') check.startPeriodMs = parseDuration(value, 'HEALTHCHECK --start-period');
    else if (name === 'retries') check.retries = Number(value);
    else throw new Error(`HEALTHCHECK --${name}: an option this reader does not know`);
    rest = rest.slice(whole.length);
  }
  if (!rest.startsWith('CMD ')) throw new Error(`HEALTHCHECK ${text}: expected CMD [...]`);
  check.command = execForm('HEALTHCHECK CMD', rest.slice(4).trim());
  return check;
}

export function readImageConfig(dockerfile: string): ImageConfig {
  const lines = dockerfile.replace(/\\\n/g, ' ').split('\n').map((l) => l.trim()).filter((l) => l !== '' && !l.startsWith('#'));
  const args: Record<string, string> = {};
  let image: ImageConfig | undefined;
  for (const line of lines) {
    const [, instruction = '', rest = ''] = /^(\S+)\s*(.*)$/.exec(line) ?? [];
    if (instruction === 'ARG' && image === undefined) {
      const [name = '', value = ''] = rest.split('=');
      args[name] = value;
    } else if (instruction === 'FROM') {
      const base = (rest.split(/\s+/)[0] ?? '').replace(/\$\{(\w+)\}/g, (_m, name: string) => args[name] ?? '');
      image = { base, env: {}, volumes: [], user: undefined, exposedPorts: [], healthCheck: undefined, stopSignal: undefined, entrypoint: [], cmd: [] };
    } else if (image !== undefined) {
      apply(image, instruction, rest);
    }
  }
  if (image === undefined) throw new Error('the Dockerfile has no FROM');
  return image;
}

function apply(image: ImageConfig, instruction: string, rest: string): void {
  switch (instruction) {
    case 'ENV':
      for (const pair of rest.split(/\s+/)) {
        const eq = pair.indexOf('=');
        if (eq < 1) throw new Error(`ENV ${rest}: only the name=value form is read`);
        image.env[pair.slice(0, eq)] = pair.slice(eq + 1);
      }
      break;
    case 'VOLUME':
      image.volumes.push(...(rest.startsWith('[') ? execForm('VOLUME', rest) : rest.split(/\s+/)));
      break;
    case 'USER':
      image.user = rest;
      break;
    case 'EXPOSE':
      image.exposedPorts.push(...rest.split(/\s+/).map((p) => Number(p.replace(/\/tcp$/, ''))));
      break;
    case 'HEALTHCHECK':
      image.healthCheck = healthCheck(rest);
      break;
    case 'STOPSIGNAL':
      image.stopSignal = rest;
      break;
    case 'ENTRYPOINT':
      image.entrypoint = execForm('ENTRYPOINT', rest);
      break;
    case 'CMD':
      image.cmd = execForm('CMD', rest);
      break;
  }
}
