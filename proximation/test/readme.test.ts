import { existsSync, readFileSync } from 'node:fs';
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

it('names in the source layout table only modules that exist where the row says', () => {
  const repo = new URL('../../', import.meta.url);
  const section = readme.slice(readme.indexOf('### Source layout'), readme.indexOf('## The routing table'));
  const rows = section.split('\n').filter((l) => /^\| `/.test(l));
  expect(rows.length).toBeGreaterThan(10);
  const missing: string[] = [];
  for (const row of rows) {
    const names = [...row.matchAll(/`([^`]+)`/g)].map((m) => m[1]!);
    const first = names[0]!;
    // Bare file names in a row live in the folder of its first path (or in that folder, if it is one).
    const folder = first.endsWith('/') ? first : first.slice(0, first.lastIndexOf('/') + 1);
    for (const name of names.filter((n) => /^[\w./-]+\.(ts|mjs)$/.test(n) || n.endsWith('/'))) {
      const file = name.includes('/') ? name : `${folder}${name}`;
      if (!existsSync(new URL(file, repo))) missing.push(`${file} (row ${first})`);
    }
  }
  expect(missing).toEqual([]);
});
