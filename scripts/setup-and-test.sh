#!/usr/bin/env bash
# From a fresh clone: install what the tests need, install the workspace, run every test on this
# machine's Node (20), then the Node-sensitive part of them again on the Node LTS the image ships.
# This is the README's test command, and CI (.ci/run) runs exactly this.
set -euo pipefail
cd "$(dirname "$0")/.."

# The Node line of Dockerfile.proximation's image, from npm's `node` package (it ships the binary);
# package.json's config.lts_node names it for the benchmark too.
LTS_NODE=$(node -p 'require("./package.json").config.lts_node')

scripts/install-system-deps.sh
npm ci --no-audit --no-fund
npm test -- --reporter=default --reporter=json --outputFile.json=test-results.json
echo "== again on $LTS_NODE: proxy, listeners, TLS, shutdown, admin API, image content, memory release, DNS client and hooks, shared"
npm exec --yes --package="$LTS_NODE" -- node node_modules/vitest/vitest.mjs run \
  proximation/test/proxy proximation/test/listeners proximation/test/shutdown.test.ts \
  proximation/test/tls/baseline.test.ts proximation/test/tls/resumption.test.ts proximation/test/tls/sni.test.ts \
  proximation/test/admin proximation/test/image-content.test.ts proximation/test/memory-release.test.ts \
  proximation/test/dns01/rfc2136.test.ts proximation/test/dns01/hook.test.ts shared \
  --reporter=default --reporter=json --outputFile.json=test-results-lts.json
node -e '
  const fs = require("fs");
  const runs = ["test-results.json", "test-results-lts.json"].map((f) => JSON.parse(fs.readFileSync(f, "utf8")));
  const passed = runs.reduce((n, r) => n + r.numPassedTests, 0);
  const failed = runs.reduce((n, r) => n + r.numFailedTests, 0);
  console.log(`tests: ${passed} passed, ${failed} failed`);
'
