#!/usr/bin/env bash
# Runs the whole test suite, then prints one plain summary line ("N passed, N failed") that
# records the result for tools that do not read vitest's own summary.
set -uo pipefail
cd "$(dirname "$0")/.."
export KVMCTL_GUEST_CACHE="${KVMCTL_GUEST_CACHE:-$PWD/.cache/guest}"
mkdir -p test-output
npx vitest run --reporter=default --reporter=json --outputFile.json=test-output/vitest.json "$@"
rc=$?
node -e '
const r = JSON.parse(require("fs").readFileSync("test-output/vitest.json", "utf8"));
console.log(`${r.numPassedTests} passed, ${r.numFailedTests} failed, ${r.numPendingTests + (r.numTodoTests ?? 0)} skipped`);
' || echo "0 passed, 1 failed"
exit $rc
