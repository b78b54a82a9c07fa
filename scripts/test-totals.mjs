// Prints the totals of vitest JSON reports, one line per run and one for all: `label=file` arguments.
// Exits 1 when any run failed a test or left no report (its build failed, or it was killed), so the
// caller's status cannot be green with a half missing.
import { readFileSync } from 'node:fs';

let passed = 0;
let failed = 0;
let missing = 0;
for (const argument of process.argv.slice(2)) {
  const [label, file] = argument.split(/=(?=[^=]*$)/);
  let report;
  try {
    report = JSON.parse(readFileSync(file, 'utf8'));
  } catch (err) {
    console.log(`${label}: no results (${file}: ${err.code ?? err.message})`);
    missing++;
    continue;
  }
  console.log(`${label}: ${report.numPassedTests} passed, ${report.numFailedTests} failed`);
  passed += report.numPassedTests;
  failed += report.numFailedTests;
}
console.log(`tests: ${passed} passed, ${failed} failed${missing > 0 ? `, ${missing} run(s) without results` : ''}`);
process.exit(failed > 0 || missing > 0 ? 1 : 0);
