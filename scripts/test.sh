#!/usr/bin/env bash
# The one command that installs everything and runs every check: ruff (lint and format),
# mypy --strict, the import-direction contracts (lint-imports) and pytest (unit, contract,
# integration, acceptance, chaos, typing, and the dashboard in headless Chromium). CI runs
# exactly this (`.ci/run`). Needs only python3 >= 3.11; safe to run again and again.
#
#   bash scripts/test.sh                 # everything
#   bash scripts/test.sh -m "not slow"   # extra arguments go to pytest
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
PYTHON="${PYTHON:-python3}"
VENV="${VENV:-.venv}"

step() { printf '\n==> %s\n' "$*"; }
die() { printf '\n==> FAILED: %s\n' "$*" >&2; exit 1; }

# -- 1. Python and the virtualenv ---------------------------------------------------------
step "python: $("$PYTHON" --version 2>&1)"
"$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
  || die "Conveyor needs Python 3.11 or newer; set PYTHON=/path/to/python3.11"
if [ ! -x "$VENV/bin/python" ]; then
  step "creating $VENV"
  "$PYTHON" -m venv "$VENV" \
    || die "could not create $VENV (on Debian/Ubuntu: apt-get install python3-venv)"
fi

# -- 2. Install Conveyor (editable) with the test tools -----------------------------------
step "installing conveyor[test] into $VENV"
"$VENV/bin/python" -m pip install --quiet --disable-pip-version-check -e '.[test]' \
  || die "pip install -e '.[test]'"
"$VENV/bin/python" -m pip install --quiet --disable-pip-version-check --no-deps -e tests/plugin_store \
  || die "pip install -e tests/plugin_store (the example:// store the plugin tests use)"

# -- 3. Servers ---------------------------------------------------------------------------
# Real servers on loopback for the Redis and PostgreSQL backends, installed from Debian's
# packages where missing, in a throwaway directory, and stopped when this script exits.
# Tests that need a server skip locally when it is missing and fail when CI is set.
SERVERS="$(mktemp -d /tmp/conveyor-servers.XXXXXX)"
chmod 755 "$SERVERS"  # PostgreSQL runs as the postgres user and must reach its data dir
stop_servers() {
  bash scripts/redis.sh stop "$SERVERS/redis" >/dev/null 2>&1 || true
  bash scripts/postgres.sh stop "$SERVERS/postgres" >/dev/null 2>&1 || true
  rm -rf "$SERVERS"
}
trap stop_servers EXIT
step "starting redis-server"
redis_env="$(bash scripts/redis.sh start "$SERVERS/redis")" || die "could not start redis-server"
export "${redis_env?}"
step "starting PostgreSQL"
pg_env="$(bash scripts/postgres.sh start "$SERVERS/postgres")" || die "could not start PostgreSQL"
export "${pg_env?}"
echo "$redis_env"; echo "$pg_env"

# -- 3a. systemd's tools for the deploy tests ---------------------------------------------
# systemd-analyze verify and systemctl --root check the exported units (nothing is started).
if ! command -v systemd-analyze >/dev/null 2>&1; then
  step "systemd-analyze not found: installing systemd with apt-get"
  if command -v apt-get >/dev/null 2>&1; then
    export DEBIAN_FRONTEND=noninteractive
    timeout 300 apt-get update -qq || true
    timeout 600 apt-get install -y -qq systemd || echo "could not install systemd" >&2
  else
    echo "no apt-get: install systemd yourself for the deploy tests" >&2
  fi
fi

# -- 3b. promtool for the metrics tests ---------------------------------------------------
# `promtool check metrics` lints the /metrics pages. It comes in Debian's prometheus
# package: only the promtool binary is taken out of it (nothing is installed or started).
if ! command -v promtool >/dev/null 2>&1 && [ ! -x "$VENV/bin/promtool" ]; then
  step "promtool not found: taking it from Debian's prometheus package"
  if command -v apt-get >/dev/null 2>&1; then
    tmp_deb="$(mktemp -d /tmp/conveyor-promtool.XXXXXX)"
    chmod 777 "$tmp_deb"  # apt-get download writes as the _apt user where it can
    venv_bin="$(cd "$VENV/bin" && pwd)"
    ( cd "$tmp_deb" \
        && { timeout 300 apt-get download -qq prometheus 2>/dev/null \
             || { timeout 300 apt-get update -qq || true; timeout 300 apt-get download -qq prometheus; }; } \
        && dpkg-deb -x prometheus_*.deb extracted \
        && install -m 755 extracted/usr/bin/promtool "$venv_bin/promtool" ) \
      || echo "could not get promtool from Debian's prometheus package" >&2
    rm -rf "$tmp_deb"
  else
    echo "no apt-get: install promtool yourself for the metrics lint" >&2
  fi
fi

# -- 3c. A browser for the dashboard tests -------------------------------------------------
# Debian's chromium, driven by Playwright through its executable path (no browser download).
# The browser tests skip locally when it is missing and fail when CI is set.
if ! command -v chromium >/dev/null 2>&1; then
  step "chromium not found: installing it with apt-get"
  if command -v apt-get >/dev/null 2>&1; then
    export DEBIAN_FRONTEND=noninteractive
    timeout 300 apt-get update -qq || true
    timeout 600 apt-get install -y -qq chromium || echo "could not install chromium" >&2
  else
    echo "no apt-get: install chromium yourself for the dashboard's browser tests" >&2
  fi
fi
if command -v chromium >/dev/null 2>&1; then
  export CONVEYOR_CHROMIUM="${CONVEYOR_CHROMIUM:-$(command -v chromium)}"
  step "chromium: $CONVEYOR_CHROMIUM"
fi

# -- 3d. KEDA's schema for the Kubernetes export tests ------------------------------------
# tests/integration/keda/keda_validate.mjs checks the exported ScaledObjects with
# @kubernetes-models/keda (generated from KEDA's API types), under Node.js. The packages its
# package-lock.json pins go to $VENV/node-keda, again only when that lock file changed.
# The KEDA schema test skips locally when they are missing and fails when CI is set.
keda_dir="$VENV/node-keda"
keda_src=tests/integration/keda
if ! cmp -s "$keda_src/package-lock.json" "$keda_dir/package-lock.json"; then
  if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
    step "node or npm not found: installing nodejs and npm with apt-get"
    if command -v apt-get >/dev/null 2>&1; then
      export DEBIAN_FRONTEND=noninteractive
      timeout 300 apt-get update -qq || true
      timeout 600 apt-get install -y -qq nodejs npm || echo "could not install nodejs and npm" >&2
    else
      echo "no apt-get: install Node.js and npm yourself for the KEDA schema test" >&2
    fi
  fi
  if command -v npm >/dev/null 2>&1; then
    step "installing @kubernetes-models/keda into $keda_dir"
    rm -rf "$keda_dir"
    mkdir -p "$keda_dir"
    cp "$keda_src/package.json" "$keda_src/package-lock.json" "$keda_dir/"
    # A failed install leaves no directory behind, so the next run tries again.
    ( cd "$keda_dir" && timeout 600 npm ci --no-audit --no-fund --loglevel=error ) \
      || { echo "could not install $keda_src/package-lock.json with npm ci" >&2; rm -rf "$keda_dir"; }
  fi
fi

# -- 4. Checks (each one runs even if an earlier one failed) ------------------------------
failed=()
run_check() {
  local name="$1"; shift
  step "$name"
  local rc=0
  "$@" || rc=$?
  if [ "$name" = pytest ] && [ "$rc" -eq 5 ]; then
    echo "pytest collected no tests: the test suite is missing" >&2
  fi
  if [ "$rc" -ne 0 ]; then failed+=("$name (exit $rc)"); fi
}

run_check ruff "$VENV/bin/ruff" check .
run_check "ruff format" "$VENV/bin/ruff" format --check .
run_check mypy "$VENV/bin/mypy"
run_check lint-imports "$VENV/bin/lint-imports"
run_check pytest "$VENV/bin/python" -m pytest "$@"

if [ "${#failed[@]}" -ne 0 ]; then
  die "$(printf '%s; ' "${failed[@]}")"
fi
printf '\n==> ALL CHECKS PASSED: ruff, ruff format, mypy, lint-imports, pytest\n'
