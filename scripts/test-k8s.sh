#!/usr/bin/env bash
# `npm run test:k8s`: the Kubernetes suite (tests-k8s/*.test.ts) against a real single-node
# Kubernetes 1.20 from ../shared/k8s-local (HUTCH_K8S_LOCAL): brings the cluster up (the first run
# builds its binaries, ~6-10 minutes; later runs use the cache, ~13 s), runs the suite, and always
# takes the cluster down again. Ends with a plain "N passed, N failed" line.
# `npm run test:k8s -- tests-k8s/x.test.ts …` runs only those files. One run at a time on a
# machine: a second waits for the first (it would otherwise take the shared cluster down under it).
set -uo pipefail
cd "$(dirname "$0")/.."
exec 9> /run/lock/hutch-test-k8s.lock
if ! flock -n 9; then
  echo "another Kubernetes suite run holds the cluster: waiting (up to 60 minutes)" >&2
  flock -w 3600 9 || { echo "0 passed, 1 failed"; exit 1; }
fi
started=$(date +%s)
K8S_LOCAL=${HUTCH_K8S_LOCAL:-$(realpath ../shared/k8s-local 2>/dev/null || echo /work/shared/k8s-local)}
if [ ! -x "$K8S_LOCAL/up" ]; then
  echo "k8s-local not found at $K8S_LOCAL (set HUTCH_K8S_LOCAL)" >&2
  echo "0 passed, 1 failed"
  exit 1
fi
export HUTCH_K8S_LOCAL=$K8S_LOCAL
bash scripts/setup.sh || { echo "0 passed, 1 failed"; exit 1; }

down() { "$K8S_LOCAL/down" > /dev/null 9>&- || "$K8S_LOCAL/down" 9>&-; }
trap down EXIT
echo "== k8s-local up"
# Three attempts: up (through import-image) checks its image imports with `ctr images ls -q | grep
# -qxF` under pipefail, which fails now and then when grep exits before ctr has written everything
# (SIGPIPE); another up clears the partial cluster and starts again.
up_out=
for attempt in 1 2 3; do
  # 9>&-: the cluster's daemons must not inherit (and keep) the lock.
  if up_out=$("$K8S_LOCAL/up" 9>&-); then break; fi
  up_out=
  echo "k8s-local up failed (attempt $attempt; logs: ${HUTCH_K8S_DIR:-/var/lib/hutch-k8s}/logs)" >&2
done
if [ -z "$up_out" ]; then
  echo "0 passed, 1 failed"
  exit 1
fi
eval "$up_out"
# Pod addresses start at 198.18.1.0, not 198.18.0.2: tests/net-fixture.ts (the main suite's fake
# internet, possibly running at the same time) routes 198.18.0.0/24 to its own namespace, which
# would make the first pod addresses unreachable from this host. host-local IPAM continues after
# the last address it reserved.
ipam="${HUTCH_K8S_DIR:-/var/lib/hutch-k8s}/state/cni-ipam/k8s-local"
mkdir -p "$ipam" && printf '198.18.0.255' > "$ipam/last_reserved_ip.0"

echo "== Kubernetes suites (node --test)"
if [ $# -gt 0 ]; then files=("$@"); else mapfile -t files < <(find tests-k8s -name '*.test.ts' | sort); fi
. scripts/node-suites.sh
node_suites "${files[@]}" 9>&-
trap - EXIT
echo "== k8s-local down"
down || fail=$((fail + 1))
echo "k8s suite took $(($(date +%s) - started)) s (cluster up and down included)"
echo "${pass} passed, ${fail} failed"
[ "$fail" = 0 ]
