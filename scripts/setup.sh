#!/usr/bin/env bash
# Installs what Hutch needs on a Debian/Ubuntu machine, idempotently: Debian packages, npm
# dependencies, the hutch-agent build, the TypeScript build, the `hutch` command and the
# `minimal` and `base` templates. A second run skips what is done.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
say() { printf '\033[1m[setup]\033[0m %s\n' "$*" >&2; }

if [ "$(id -u)" != 0 ]; then
  echo "hutch: setup must run as root (it installs Debian packages and the server manages namespaces, cgroups and mounts)." >&2
  echo "       run it as root, e.g.: sudo npm start" >&2
  exit 1
fi
if [ ! -f /etc/debian_version ] || ! command -v apt-get >/dev/null 2>&1; then
  echo "hutch: this setup supports Debian and Ubuntu (apt). On another distribution install by hand:" >&2
  echo "       crun (preferred) or runc, runsc (gVisor, optional), go >= 1.19, busybox (static)," >&2
  echo "       debootstrap, iproute2, python3, make, g++; then run: npm install && npm run build" >&2
  exit 1
fi

# Debian packages (by name; the machine's own apt sources are used).
# golang-github-masterminds-sprig-dev and golang-gopkg-yaml.v2-dev: the Kubernetes suite's Helm
# renderer (tests-k8s/helm-template; no helm binary is reachable). postgresql: the tests of the
# PostgreSQL store start private clusters of their own (tests/pg-fixture.ts).
PACKAGES=(runc crun runsc golang-go busybox-static debootstrap iproute2 nftables conntrack openssl e2fsprogs python3 make g++ ca-certificates
  golang-github-masterminds-sprig-dev golang-gopkg-yaml.v2-dev postgresql)
missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  say "installing Debian packages: ${missing[*]}"
  if [[ " ${missing[*]} " == *" postgresql "* ]] && [ ! -e /etc/postgresql-common/createcluster.conf ]; then
    # No default cluster (and no server on port 5432) from the package: Hutch's tests start
    # clusters of their own, and an operator creates the store's cluster deliberately.
    mkdir -p /etc/postgresql-common
    echo 'create_main_cluster = false' > /etc/postgresql-common/createcluster.conf
    fresh_postgresql=1
  fi
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive UCF_FORCE_CONFFOLD=1 apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  if [ "${fresh_postgresql:-0}" = 1 ] && command -v pg_lsclusters >/dev/null; then
    # Should the package have made its default cluster anyway: stopped, and not started at boot.
    pg_lsclusters -h 2>/dev/null | while read -r version name _; do
      pg_ctlcluster "$version" "$name" stop 2>/dev/null || true
      echo manual > "/etc/postgresql/$version/$name/start.conf"
    done
  fi
else
  say "Debian packages: present"
fi

# npm dependencies: reinstall only when package-lock.json changed.
lock_hash=$(sha256sum package-lock.json package.json packages/*/package.json | sha256sum | cut -c1-16)
if [ ! -f node_modules/.hutch-deps ] || [ "$(cat node_modules/.hutch-deps)" != "$lock_hash" ]; then
  say "installing npm dependencies (better-sqlite3 compiles from source: about a minute)"
  npm install --no-audit --no-fund --loglevel=error >&2
  npm rebuild better-sqlite3 --loglevel=error >&2
  echo "$lock_hash" > node_modules/.hutch-deps
else
  say "npm dependencies: present"
fi

# The in-sandbox agent: a static Go binary, rebuilt when its sources change.
agent_hash=$(find agent -name '*.go' -o -name go.mod | sort | xargs sha256sum | sha256sum | cut -c1-16)
if [ ! -x agent/bin/hutch-agent ] || [ "$(cat agent/bin/.hash 2>/dev/null)" != "$agent_hash" ]; then
  say "building hutch-agent"
  (cd agent && CGO_ENABLED=0 GOFLAGS=-mod=mod GOCACHE=${GOCACHE:-/root/.cache/go-build} go build -trimpath -ldflags='-s -w' -o bin/hutch-agent ./cmd/hutch-agent)
  echo "$agent_hash" > agent/bin/.hash
else
  say "hutch-agent: built"
fi

say "building TypeScript (incremental)"
npx --no-install tsc -b packages/sdk packages/server packages/cli >&2

chmod +x packages/cli/dist/main.js
if [ "$(readlink /usr/local/bin/hutch 2>/dev/null)" != "$ROOT/packages/cli/dist/main.js" ]; then
  ln -sf "$ROOT/packages/cli/dist/main.js" /usr/local/bin/hutch
  say "linked /usr/local/bin/hutch"
fi

# Templates are built into the layer cache the server uses (content-addressed; skipped when present).
node packages/cli/dist/main.js template build --layers-dir "${HUTCH_LAYERS_DIR:-${HUTCH_DATA_DIR:-/var/lib/hutch}/layers}" >&2
say "ready"
