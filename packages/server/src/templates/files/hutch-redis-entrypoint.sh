#!/bin/sh
# The `redis` image's runtime contract on Debian's redis-server 7.0 (Hutch template redis-7),
# written for Hutch: it runs as the user redis in /data.
#   - arguments starting with "-", or a first argument ending in .conf, are for redis-server;
#   - `redis-server` without a configuration file listens on every address with protected mode
#     off (as the image does: the environment's private network is the boundary);
#   - anything else is run as it is.
set -eu

case "${1:-}" in
  -* | *.conf) set -- redis-server "$@" ;;
  '') set -- redis-server ;;
esac

if [ "$1" = redis-server ]; then
  case "${2:-}" in
    *.conf) ;;
    *)
      shift
      set -- redis-server --protected-mode no --bind '* -::*' "$@"
      ;;
  esac
fi

exec "$@"
