#!/usr/bin/env bash
# One command: install Conveyor into .venv and run `conveyor demo` (SQLite, no server).
# Needs only python3 >= 3.11. Extra arguments go to `conveyor demo`.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
PYTHON="${PYTHON:-python3}"
VENV="${VENV:-.venv}"

"$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))' || {
  echo "Conveyor needs Python 3.11 or newer; set PYTHON=/path/to/python3.11" >&2
  exit 1
}
if [ ! -x "$VENV/bin/python" ]; then
  echo "==> creating $VENV"
  "$PYTHON" -m venv "$VENV"
fi
echo "==> installing conveyor into $VENV"
"$VENV/bin/python" -m pip install --quiet --disable-pip-version-check -e .
echo "==> conveyor demo"
exec "$VENV/bin/conveyor" demo "$@"
