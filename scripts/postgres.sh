#!/usr/bin/env bash
# A throwaway PostgreSQL for the tests, on 127.0.0.1 in a directory of your choosing.
#
#   eval "$(bash scripts/postgres.sh start /tmp/conveyor-pg)"   # exports the URL below
#   bash scripts/postgres.sh stop /tmp/conveyor-pg
#
# `start` installs PostgreSQL from Debian's packages when `initdb` is missing (needs root),
# creates a cluster in <dir>/data owned by the postgres user (initdb and the server refuse to
# run as root), starts it on a free loopback port with its unix socket inside <dir>, trust
# auth for loopback only, creates the `conveyor_test` database, and prints exactly one line
# on stdout:
#
#   CONVEYOR_TEST_POSTGRES_URL=postgresql://postgres@127.0.0.1:PORT/conveyor_test
#
# Progress goes to stderr. Every wait is bounded. `stop` is a fast shutdown of that cluster
# only (pg_ctl stop -m fast on <dir>/data); it is safe to call twice. `restart` (MODE=fast or
# immediate) is for fault tests; a `start` after a `stop` keeps the port.
set -euo pipefail

usage() { echo "usage: $0 start|stop|restart|url <dir>" >&2; exit 2; }
say() { printf 'postgres.sh: %s\n' "$*" >&2; }
die() { say "error: $*"; exit 1; }

[ $# -eq 2 ] || usage
action="$1"
dir="$(mkdir -p "$2" && cd "$2" && pwd)"
data="$dir/data"
DB="conveyor_test"

find_bin() {
  # Debian keeps the server binaries out of PATH, under /usr/lib/postgresql/<version>/bin.
  # A PATH entry may be a lone symlink (initdb without psql), so follow it to its directory.
  if command -v initdb >/dev/null 2>&1; then
    dirname "$(readlink -f "$(command -v initdb)")"
    return 0
  fi
  local newest
  newest="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)"
  [ -n "$newest" ] && [ -x "$newest/initdb" ] && echo "$newest"
}

install_postgres() {
  [ "$(id -u)" -eq 0 ] || die "PostgreSQL is not installed and installing it needs root"
  command -v apt-get >/dev/null 2>&1 || die "PostgreSQL is not installed and apt-get is missing"
  say "installing PostgreSQL from Debian's packages"
  export DEBIAN_FRONTEND=noninteractive
  timeout 300 apt-get update -qq >&2
  timeout 600 apt-get install -y -qq postgresql >&2
}

# Run a command as the cluster's owner: the postgres user when we are root, else ourselves.
as_owner() {
  if [ "$(id -u)" -eq 0 ]; then
    runuser -u postgres -- "$@"
  else
    "$@"
  fi
}

free_port() {
  python3 - <<'EOF'
import socket
s = socket.socket()
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])
s.close()
EOF
}

start() {
  local bin port
  bin="$(find_bin || true)"
  if [ -z "$bin" ]; then
    install_postgres
    bin="$(find_bin || true)"
    [ -n "$bin" ] || die "initdb still not found after installing PostgreSQL"
  fi
  if [ "$(id -u)" -eq 0 ]; then
    id postgres >/dev/null 2>&1 || die "no 'postgres' user to own the cluster"
    chown postgres "$dir"
    # The server runs as postgres, so every directory above <dir> must let it through
    # (mktemp -d makes 0700 directories, for instance).
    runuser -u postgres -- test -x "$dir" \
      || die "the postgres user cannot reach $dir: make its parent directories world-searchable (chmod o+x)"
  fi
  if [ ! -f "$data/PG_VERSION" ]; then
    say "initdb in $data"
    as_owner "$bin/initdb" -D "$data" -U postgres --auth=trust --encoding=UTF8 \
      --locale=C.UTF-8 >"$dir/initdb.log" 2>&1 || { cat "$dir/initdb.log" >&2; die "initdb failed"; }
    # Loopback and the private socket only; nothing listens on other interfaces.
    cat >"$data/pg_hba.conf" <<'EOF'
local   all   all                 trust
host    all   all   127.0.0.1/32  trust
host    all   all   ::1/128       trust
EOF
  fi
  if as_owner "$bin/pg_ctl" -D "$data" status >/dev/null 2>&1; then
    port="$(sed -n 's/^port = \([0-9]*\).*/\1/p' "$data/conveyor.conf" 2>/dev/null || true)"
    [ -n "$port" ] || die "a server already runs on $data but its port is unknown"
    say "already running on port $port"
  else
    # A restart after `stop` keeps its port, so URLs handed out before stay valid.
    port="$(sed -n 's/^port = \([0-9]*\).*/\1/p' "$data/conveyor.conf" 2>/dev/null || true)"
    [ -n "$port" ] || port="$(free_port)"
    cat >"$data/conveyor.conf" <<EOF
port = $port
listen_addresses = '127.0.0.1'
unix_socket_directories = '$dir'
max_connections = 300
fsync = on
EOF
    grep -q "include_if_exists = 'conveyor.conf'" "$data/postgresql.conf" \
      || echo "include_if_exists = 'conveyor.conf'" >>"$data/postgresql.conf"
    say "starting on 127.0.0.1:$port"
    as_owner "$bin/pg_ctl" -D "$data" -l "$dir/server.log" -w -t 60 start >&2 \
      || { tail -n 30 "$dir/server.log" >&2 || true; die "the server did not start"; }
  fi
  local i
  for i in $(seq 1 100); do
    if as_owner "$bin/pg_isready" -q -h 127.0.0.1 -p "$port" -t 1; then break; fi
    [ "$i" -eq 100 ] && die "the server on port $port is not accepting connections"
    sleep 0.1
  done
  if ! as_owner "$bin/psql" -h 127.0.0.1 -p "$port" -U postgres -d postgres -tAq \
      -c "SELECT 1 FROM pg_database WHERE datname = '$DB'" | grep -q 1; then
    as_owner "$bin/createdb" -h 127.0.0.1 -p "$port" -U postgres "$DB"
  fi
  echo "CONVEYOR_TEST_POSTGRES_URL=postgresql://postgres@127.0.0.1:$port/$DB"
}

stop() {
  local bin
  bin="$(find_bin || true)"
  [ -n "$bin" ] || { say "PostgreSQL is not installed: nothing to stop"; return 0; }
  [ -f "$data/PG_VERSION" ] || { say "no cluster in $data: nothing to stop"; return 0; }
  if as_owner "$bin/pg_ctl" -D "$data" status >/dev/null 2>&1; then
    as_owner "$bin/pg_ctl" -D "$data" -m fast -w -t 60 stop >&2
  else
    say "not running"
  fi
}

restart() {
  local bin
  bin="$(find_bin || true)"
  [ -n "$bin" ] && [ -f "$data/PG_VERSION" ] || die "no cluster in $data"
  as_owner "$bin/pg_ctl" -D "$data" -l "$dir/server.log" -m "${MODE:-fast}" -w -t 60 restart >&2
}

url() {
  local port
  port="$(sed -n 's/^port = \([0-9]*\).*/\1/p' "$data/conveyor.conf" 2>/dev/null || true)"
  [ -n "$port" ] || die "no cluster in $data"
  echo "CONVEYOR_TEST_POSTGRES_URL=postgresql://postgres@127.0.0.1:$port/$DB"
}

case "$action" in
  start) start ;;
  stop) stop ;;
  restart) restart ;;
  url) url ;;
  *) usage ;;
esac
