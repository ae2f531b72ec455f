#!/usr/bin/env bash
# Start (or stop) a throwaway PostgreSQL server on 127.0.0.1 for local runs and tests.
#
#   scripts/start_postgres.sh start [DIR] [PORT]   # prints the DAYDREAMING_PG_URL to export
#   scripts/start_postgres.sh stop  DIR
#
# The cluster lives in DIR (default: a new temporary directory) with password authentication
# (user postgres, password from PGPASSWORD or generated). As root, initdb/pg_ctl run as the
# `postgres` user, since they refuse to run as root. The test fixtures do the same on their
# own when nothing listens on 127.0.0.1:5432 and DAYDREAMING_PG_URL is unset.
set -euo pipefail

bin_dir=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)
if [ -z "$bin_dir" ]; then
  bin_dir=$(dirname "$(command -v initdb 2>/dev/null || echo /nonexistent/initdb)")
fi
if [ ! -x "$bin_dir/initdb" ] || [ ! -x "$bin_dir/pg_ctl" ]; then
  echo "PostgreSQL binaries not found: run scripts/install_system_deps.sh" >&2
  exit 1
fi

as_owner() {
  if [ "$(id -u)" -eq 0 ]; then
    su postgres -s /bin/sh -c "$(printf '%q ' "$@")"
  else
    "$@"
  fi
}

case "${1:-}" in
  start)
    dir=${2:-$(mktemp -d /tmp/daydream-pg.XXXXXX)}
    port=${3:-55432}
    password=${PGPASSWORD:-$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')}
    user=postgres
    [ "$(id -u)" -eq 0 ] || user=$(id -un)
    mkdir -p "$dir"
    printf '%s\n' "$password" >"$dir/pwfile"
    if [ "$(id -u)" -eq 0 ]; then chown -R postgres: "$dir"; fi
    as_owner "$bin_dir/initdb" -D "$dir/data" -A scram-sha-256 -U "$user" --pwfile="$dir/pwfile" -E UTF8 >/dev/null
    as_owner "$bin_dir/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w \
      -o "-p $port -k $dir -c listen_addresses=127.0.0.1 -c fsync=off" start >/dev/null
    echo "export DAYDREAMING_PG_URL=postgresql://$user:$password@127.0.0.1:$port/postgres"
    echo "# stop with: $0 stop $dir" >&2
    ;;
  stop)
    dir=${2:?usage: $0 stop DIR}
    as_owner "$bin_dir/pg_ctl" -D "$dir/data" -m fast -w stop >/dev/null
    rm -rf "$dir"
    ;;
  *)
    echo "usage: $0 start [DIR] [PORT] | stop DIR" >&2
    exit 2
    ;;
esac
