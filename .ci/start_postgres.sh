#!/usr/bin/env bash
# Starts a throwaway PostgreSQL cluster for the tests marked `postgres` and prints
#   export RECO_TEST_DSN=postgresql://...
# on stdout (everything else goes to stderr), for `eval "$(bash .ci/start_postgres.sh)"`.
#
# A private cluster in a temporary directory, rather than Debian's own `main` cluster,
# so the run neither depends on nor disturbs whatever the machine already serves on 5432.
# Installs Debian's postgresql package when no server binaries are present.
set -euo pipefail

log() { echo "start_postgres: $*" >&2; }

find_bindir() {
  local v
  v=$(ls /usr/lib/postgresql 2>/dev/null | sort -V | tail -n 1)
  if [[ -n "$v" && -x "/usr/lib/postgresql/$v/bin/initdb" ]]; then
    echo "/usr/lib/postgresql/$v/bin"
  fi
}

bindir=$(find_bindir)
if [[ -z "$bindir" ]]; then
  if [[ $(id -u) -ne 0 ]]; then
    log "no PostgreSQL server binaries and not root: install Debian's postgresql package first"
    exit 1
  fi
  log "installing postgresql"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q >&2
  apt-get install -y -q --no-install-recommends postgresql >&2
  bindir=$(find_bindir)
  [[ -n "$bindir" ]] || { log "postgresql installed but no initdb found"; exit 1; }
fi

# As root the server must run as an unprivileged user (postgres refuses root).
as_owner=()
if [[ $(id -u) -eq 0 ]]; then
  id postgres >/dev/null 2>&1 || useradd --system --home-dir /var/lib/postgresql --shell /bin/bash postgres
  as_owner=(runuser -u postgres --)
fi

port=${RECO_TEST_PG_PORT:-$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')}
# As root, /tmp rather than $TMPDIR: the postgres user must be able to reach the directory.
base=${TMPDIR:-/tmp}
[[ ${#as_owner[@]} -eq 0 ]] || base=/tmp
dir=$(mktemp -d "$base/reco-pg.XXXXXX")
chmod 755 "$dir"
[[ ${#as_owner[@]} -eq 0 ]] || chown postgres: "$dir"

log "initdb in $dir ($bindir)"
"${as_owner[@]}" "$bindir/initdb" -D "$dir/data" -U postgres -A trust -E UTF8 --no-sync >&2
# fsync off: a test cluster thrown away after the run need not survive a crash.
"${as_owner[@]}" "$bindir/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w \
  -o "-c listen_addresses=127.0.0.1 -p $port -k $dir -c fsync=off -c synchronous_commit=off -c full_page_writes=off" \
  start >&2 || { cat "$dir/server.log" >&2; exit 1; }
"${as_owner[@]}" "$bindir/psql" -h 127.0.0.1 -p "$port" -U postgres -d postgres -q -v ON_ERROR_STOP=1 \
  -c "CREATE DATABASE reco_test" >&2

log "PostgreSQL on 127.0.0.1:$port, stop with: ${as_owner[*]} $bindir/pg_ctl -D $dir/data stop"
echo "export RECO_TEST_DSN=postgresql://postgres@127.0.0.1:$port/reco_test"
echo "export RECO_TEST_PGDATA=$dir/data"
