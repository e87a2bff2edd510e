#!/bin/sh
# The `postgres` image's runtime contract on Debian's postgresql-15 (Hutch template postgres-15),
# written for Hutch: it runs as the user postgres from the start (sandbox processes have no
# capabilities, so there is no root step that chowns and switches users).
#   - arguments starting with "-" are options for postgres: `postgres` is put in front;
#   - `postgres …` on an empty $PGDATA first runs initdb with POSTGRES_USER (default postgres) as
#     the superuser, POSTGRES_PASSWORD (required unless POSTGRES_HOST_AUTH_METHOD=trust),
#     POSTGRES_DB (default: the user name), POSTGRES_INITDB_ARGS, then the scripts in
#     /docker-entrypoint-initdb.d (*.sh sourced, *.sql and *.sql.gz run with psql) against a
#     temporary server on the unix socket only, and allows password logins from the network;
#   - anything else is run as it is.
set -eu

case "${1:-}" in
  -*) set -- postgres "$@" ;;
  '') set -- postgres ;;
esac

if [ "$1" != postgres ]; then
  exec "$@"
fi

PGDATA="${PGDATA:-/var/lib/postgresql/data}"
export PGDATA
mkdir -p "$PGDATA"
chmod 700 "$PGDATA"

if [ ! -s "$PGDATA/PG_VERSION" ]; then
  superuser="${POSTGRES_USER:-postgres}"
  database="${POSTGRES_DB:-$superuser}"
  auth="${POSTGRES_HOST_AUTH_METHOD:-scram-sha-256}"
  if [ -z "${POSTGRES_PASSWORD:-}" ] && [ "$auth" != trust ]; then
    echo "hutch-postgres-entrypoint: POSTGRES_PASSWORD is not set; the database is not initialized." >&2
    echo "  Set POSTGRES_PASSWORD (or POSTGRES_HOST_AUTH_METHOD=trust to allow every connection without one)." >&2
    exit 1
  fi
  pwfile="$(mktemp)"
  printf '%s\n' "${POSTGRES_PASSWORD:-}" > "$pwfile"
  # shellcheck disable=SC2086 # POSTGRES_INITDB_ARGS is a list of options, split on purpose
  initdb --username="$superuser" --pwfile="$pwfile" --auth-local=trust --auth-host="$auth" ${POSTGRES_INITDB_ARGS:-}
  rm -f "$pwfile"
  printf "\nlisten_addresses = '*'\n" >> "$PGDATA/postgresql.conf"
  printf 'host all all all %s\n' "$auth" >> "$PGDATA/pg_hba.conf"

  pg_ctl -D "$PGDATA" -o "-c listen_addresses=''" -w start
  psql() { command psql -v ON_ERROR_STOP=1 --no-psqlrc --username "$superuser" "$@"; }
  if [ "$database" != postgres ]; then
    psql --dbname postgres --set db="$database" <<'SQL'
CREATE DATABASE :"db";
SQL
  fi
  for f in /docker-entrypoint-initdb.d/*; do
    case "$f" in
      *.sh) echo "running $f"; . "$f" ;;
      *.sql) echo "running $f"; psql --dbname "$database" -f "$f" ;;
      *.sql.gz) echo "running $f"; gunzip -c "$f" | psql --dbname "$database" ;;
      *) [ -e "$f" ] && echo "ignoring $f" ;;
    esac
  done
  pg_ctl -D "$PGDATA" -m fast -w stop
  echo "hutch-postgres-entrypoint: database initialized; starting postgres"
fi

exec "$@"
