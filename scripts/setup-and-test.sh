#!/usr/bin/env bash
# From a fresh clone: install what the tests need, install the workspace, run every test on this
# machine's Node (20), then the Node-sensitive part of them again on the Node LTS the image ships.
# This is the README's test command, and CI (.ci/run) runs exactly this. Run it as yourself: as root it
# installs the Debian packages directly, as another user install-system-deps.sh asks sudo for that step
# only (so node_modules and the test output stay yours).
# Both halves always run and the totals of both are printed; the exit status is non-zero when either
# half failed (or wrote no results).
set -euo pipefail
cd "$(dirname "$0")/.."

# The Node line of Dockerfile.proximation's image, from npm's `node` package (it ships the binary);
# package.json's config.lts_node names it for the benchmark too.
LTS_NODE=$(node -p 'require("./package.json").config.lts_node')

scripts/install-system-deps.sh
npm ci --no-audit --no-fund
rm -f test-results.json test-results-lts.json
status=0
npm test -- --reporter=default --reporter=json --outputFile.json=test-results.json || status=$?
echo "== again on $LTS_NODE: proxy, listeners, TLS, shutdown, admin API, workers, image content, memory release, DNS client and hooks, shared"
npm exec --yes --package="$LTS_NODE" -- node node_modules/vitest/vitest.mjs run \
  proximation/test/proxy proximation/test/listeners proximation/test/shutdown.test.ts \
  proximation/test/tls/baseline.test.ts proximation/test/tls/resumption.test.ts proximation/test/tls/sni.test.ts \
  proximation/test/admin proximation/test/cluster proximation/test/image-content.test.ts proximation/test/memory-release.test.ts \
  proximation/test/dns01/rfc2136.test.ts proximation/test/dns01/hook.test.ts shared \
  --reporter=default --reporter=json --outputFile.json=test-results-lts.json || status=$?
node scripts/test-totals.mjs "node $(node --version)=test-results.json" "$LTS_NODE=test-results-lts.json" || status=$?
exit "$status"
