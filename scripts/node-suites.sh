# Sourced by test.sh and test-k8s.sh: node_suites FILE... runs node:test suites one file at a time
# (spec reporter, output shown) and sets `pass` and `fail` from the runner's totals; a runner that
# fails without counting a failed test counts as one failure.
node_suites() {
  local log node_status
  log=$(mktemp)
  node --import tsx --test --test-reporter=spec --test-concurrency=1 "$@" 2>&1 | tee "$log"
  node_status=${PIPESTATUS[0]}
  pass=$(grep -E '^ℹ pass [0-9]+' "$log" | tail -1 | awk '{print $3}')
  fail=$(grep -E '^ℹ fail [0-9]+' "$log" | tail -1 | awk '{print $3}')
  rm -f "$log"
  pass=${pass:-0}
  fail=${fail:-0}
  if [ "$node_status" != 0 ] && [ "$fail" = 0 ]; then fail=1; fi
}
