#!/usr/bin/env bash
# `npm run bench`: set up (as `npm test` does), make sure podman is there for the comparison, then
# run the benchmark. Options go after `--`, e.g. `npm run bench -- --runs 30 --tier container --write`.
set -uo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh || exit 1

# podman is the baseline for the one-shot comparison (Debian package, the machine's apt sources).
if ! command -v podman >/dev/null 2>&1; then
  echo "[bench] installing podman (baseline for the comparison)" >&2
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq podman >/dev/null ||
    echo "[bench] could not install podman: the comparison is skipped" >&2
fi

HUTCH_BENCH_VIA=npm exec node --import tsx bench/run.ts "$@"
