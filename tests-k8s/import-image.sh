#!/usr/bin/env bash
# The Kubernetes suite's image import: k8s-local's `import-image <oci-tar> <name>`, made reliable.
# That script checks its result with `ctr images ls -q | grep -qxF` under pipefail, which fails now
# and then although the import worked (grep exits at the match, ctr gets SIGPIPE on its next
# line); and containerd now and then answers "content digest … not found" to an import that
# succeeds when repeated. So: when it fails, ask containerd for its whole list (no early exit)
# before calling it a failure, and try again after a pause, at most 5 times.
set -uo pipefail
[ $# -eq 2 ] || { echo "usage: import-image.sh <oci-tar> <name>" >&2; exit 2; }
tarball=$1 name=$2
k8s_local=${HUTCH_K8S_LOCAL:-$(realpath "$(dirname "$0")/../../shared/k8s-local")}
sock=${HUTCH_K8S_DIR:-/var/lib/hutch-k8s}/run/containerd.sock
registered() {
  local list
  list=$(timeout 30 ctr --address "$sock" --namespace k8s.io images ls -q 2> /dev/null) || return 1
  grep -qxF "$1" <<< "$list"
}
err=
for attempt in 1 2 3 4 5; do
  if out=$("$k8s_local/import-image" "$tarball" "$name" 2>&1); then
    echo "$out" | tail -1
    exit 0
  fi
  err=$out
  # Only fully qualified names are checked this way (Hutch's are: localhost/hutch/...).
  case $name in localhost/*:* | *.*/*:*) if registered "$name"; then echo "$name"; exit 0; fi ;; esac
  echo "import-image.sh: attempt $attempt failed: $err" >&2
  sleep "$attempt"
done
echo "import-image.sh: $name not imported after 5 attempts: $err" >&2
exit 1
