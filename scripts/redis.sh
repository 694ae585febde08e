#!/usr/bin/env bash
# Start or stop a throwaway redis-server for the tests, on 127.0.0.1 and a free port.
#
#   eval "$(bash scripts/redis.sh start /tmp/conveyor-redis)"   # exports CONVEYOR_TEST_REDIS_URL
#   bash scripts/redis.sh stop /tmp/conveyor-redis
#
# `start` installs redis-server with apt-get when it is missing, runs it daemonized with
# appendonly yes, its data, log and pidfile in DIR, waits (bounded) until it answers, and
# prints `CONVEYOR_TEST_REDIS_URL=redis://127.0.0.1:PORT/0`. `stop` stops the server whose
# pid is in DIR/redis.pid (and only that one).
set -euo pipefail

usage() { echo "usage: $0 start|stop DIR" >&2; exit 2; }
[ $# -eq 2 ] || usage
cmd="$1"
dir="$(mkdir -p "$2" && cd "$2" && pwd)"
pidfile="$dir/redis.pid"

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

install() {
  command -v redis-server >/dev/null 2>&1 && return
  echo "redis-server not found: installing it with apt-get" >&2
  export DEBIAN_FRONTEND=noninteractive
  timeout 300 apt-get update -qq >&2
  timeout 300 apt-get install -y -qq redis-server >&2
}

start() {
  install
  if [ -f "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null; then
    echo "redis already running from $dir (pid $(cat "$pidfile"))" >&2
    echo "CONVEYOR_TEST_REDIS_URL=redis://127.0.0.1:$(cat "$dir/port")/0"
    return
  fi
  local port
  port="$(free_port)"
  echo "$port" > "$dir/port"
  redis-server --bind 127.0.0.1 --port "$port" --daemonize yes --dir "$dir" \
    --pidfile "$pidfile" --logfile "$dir/redis.log" --appendonly yes \
    --appendfsync everysec --save "" --maxmemory-policy noeviction >&2
  local i
  for i in $(seq 1 100); do
    if redis-cli -h 127.0.0.1 -p "$port" ping 2>/dev/null | grep -q PONG; then
      echo "CONVEYOR_TEST_REDIS_URL=redis://127.0.0.1:$port/0"
      return
    fi
    sleep 0.1
  done
  echo "redis-server did not answer on port $port within 10 s; see $dir/redis.log" >&2
  exit 1
}

stop() {
  [ -f "$pidfile" ] || { echo "no redis pidfile in $dir" >&2; return; }
  local pid i
  pid="$(cat "$pidfile")"
  kill "$pid" 2>/dev/null || { rm -f "$pidfile"; return; }
  for i in $(seq 1 100); do
    kill -0 "$pid" 2>/dev/null || { rm -f "$pidfile"; return; }
    sleep 0.1
  done
  echo "redis (pid $pid) did not stop within 10 s; killing it" >&2
  kill -9 "$pid" 2>/dev/null || true
  rm -f "$pidfile"
}

case "$cmd" in
  start) start ;;
  stop) stop ;;
  *) usage ;;
esac
