import { PassThrough } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { nearestName, parseCommandLine, runCommandLine, unknownVariableWarnings } from '../src/command-line.js';
import { ProximationError } from '../src/errors.js';

const context = { program: 'tool', command: 'do' };
const OPTIONS = { name: { type: 'string' }, tag: { type: 'string', multiple: true }, json: { type: 'boolean' }, help: { type: 'boolean', short: 'h' } } as const;

function usage(args: string[]): string {
  try {
    parseCommandLine(args, OPTIONS, context);
  } catch (err) {
    expect((err as ProximationError).code).toBe('ERR_USAGE');
    return (err as Error).message;
  }
  throw new Error(`${JSON.stringify(args)} parsed`);
}

describe('parseCommandLine', () => {
  it('parses strings, repeated options, booleans, shorts, "=" values and what follows "--" as positionals', () => {
    expect(parseCommandLine(['--name', 'a', 'x', '--tag=1', '--tag', '2', '-h', '--json', '--', '--name'], OPTIONS, context)).toEqual({
      values: { name: 'a', tag: ['1', '2'], help: true, json: true },
      positionals: ['x', '--name'],
    });
    expect(parseCommandLine(['--name=-x'], OPTIONS, context).values).toEqual({ name: '-x' });
  });

  it.each([
    [['--nmae', 'a'], 'Unknown option --nmae. Did you mean --name?'],
    [['--frobnicate'], 'Unknown option --frobnicate.'],
    [['-x'], 'Unknown option -x.'],
    [['--name'], '--name needs a value, such as --name <value>.'],
    [['--name', '--json'], '--name needs a value, but is followed by --json; for a value starting with "-", write --name=--json.'],
    [['--json=no'], '--json takes no value; write it alone (got "--json=no").'],
  ])('words %j itself, ending with the help to run', (args, message) => {
    expect(usage(args)).toBe(`${message}\nRun "tool do --help" for usage.`);
  });
});

describe('nearestName and unknownVariableWarnings', () => {
  it('suggest a near name for a typo, none for a word unlike every candidate', () => {
    expect(nearestName('--hots', ['--host', '--json'])).toBe('--host');
    expect(nearestName('--zzzzzz', ['--host', '--json'])).toBeUndefined();
    expect(unknownVariableWarnings({ APP_PORT: '1', APP_PROT: '2', APP_QQQQQQQQ: '3', OTHER: '4' }, 'APP_', ['APP_PORT'])).toEqual([
      'APP_PROT is set but is not a setting; it is ignored. Did you mean APP_PORT?',
      'APP_QQQQQQQQ is set but is not a setting; it is ignored.',
    ]);
  });
});

describe('runCommandLine', () => {
  async function outcome(command: () => Promise<string | number>): Promise<{ code: number; out: string; err: string }> {
    const [stdout, stderr] = [new PassThrough(), new PassThrough()];
    const code = await runCommandLine('tool', { stdout, stderr }, command);
    return { code, out: String(stdout.read() ?? ''), err: String(stderr.read() ?? '') };
  }

  it('exits 0 with the output, 2 for a usage error, 1 for another error, writing errors only to stderr', async () => {
    expect(await outcome(async () => 'done')).toEqual({ code: 0, out: 'done\n', err: '' });
    expect(await outcome(async () => 3)).toEqual({ code: 3, out: '', err: '' });
    expect(await outcome(async () => Promise.reject(new ProximationError('ERR_USAGE', 'bad flag')))).toEqual({ code: 2, out: '', err: 'tool: bad flag\n' });
    expect(await outcome(async () => Promise.reject(new ProximationError('ERR_X', 'it failed')))).toEqual({ code: 1, out: '', err: 'tool: it failed\n' });
    const system = Object.assign(new Error('listen EADDRINUSE: address already in use :::80'), { code: 'EADDRINUSE', syscall: 'listen' });
    expect(await outcome(async () => Promise.reject(system))).toEqual({ code: 1, out: '', err: 'tool: listen EADDRINUSE: address already in use :::80\n' });
    const bug = await outcome(async () => Promise.reject(new TypeError('x is undefined')));
    expect(bug.code).toBe(1);
    expect(bug.err).toMatch(/^tool: unexpected error: TypeError: x is undefined\n\s+at /);
  });
});
