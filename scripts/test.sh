#!/usr/bin/env bash
# `npm test`: set up, run the agent's Go tests, then every node:test suite against real sandboxes.
# Ends with a plain "N passed, N failed" line.
set -uo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh || exit 1

echo "== hutch-agent (go test)"
if ! (cd agent && CGO_ENABLED=0 go test ./... 2>&1); then go_failed=1; else go_failed=0; fi

echo "== type check of the tests and benches (tsconfig.tests.json)"
if ! npx --no-install tsc -p tsconfig.tests.json; then typecheck_failed=1; else typecheck_failed=0; fi

echo "== TypeScript suites (node --test)"
mapfile -t files < <(find packages/*/test tests bench -name '*.test.ts' 2>/dev/null | sort)
. scripts/node-suites.sh
node_suites "${files[@]}"
if [ "$go_failed" = 1 ]; then fail=$((fail + 1)); fi
if [ "$typecheck_failed" = 1 ]; then fail=$((fail + 1)); fi
echo "${pass} passed, ${fail} failed"
[ "$fail" = 0 ]
