#!/usr/bin/env bash
# From a fresh clone: install what the tests need, install the workspace, run every test.
# This is the README's test command, and CI (.ci/run) runs exactly this.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/install-system-deps.sh
npm ci --no-audit --no-fund
npm test -- --reporter=default --reporter=json --outputFile.json=test-results.json
node -e '
  const r = JSON.parse(require("fs").readFileSync("test-results.json", "utf8"));
  console.log(`tests: ${r.numPassedTests} passed, ${r.numFailedTests} failed`);
'
