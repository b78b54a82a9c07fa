import { readFileSync } from 'node:fs';
import { expect, it } from 'vitest';
import { SETTINGS } from '../src/config.js';

const readme = readFileSync(new URL('../../README.md', import.meta.url), 'utf8');

it('documents every setting the program reads, with its flag', () => {
  const missing = SETTINGS.filter((s) => !readme.includes(`| \`${s.env}\` | \`--${s.flag}\` |`)).map((s) => s.env);
  expect(missing).toEqual([]);
});

it('documents no PROXIMATION_ variable the program does not read', () => {
  const known = new Set(SETTINGS.map((s) => s.env));
  const mentioned = new Set(readme.match(/PROXIMATION_[A-Z0-9_]+/g));
  expect([...mentioned].filter((name) => !known.has(name))).toEqual([]);
});
