"""Imports point one way (DESIGN.md rule 10), checked in a fresh interpreter.

`lint-imports` (scripts/test.sh) checks the import graph, lazy and type-only imports
included; these tests check what importing a module really loads. The package root
re-exports `Worker`, so ``import conveyor`` loads the worker by design: to see what a
subpackage itself needs, the root is stood in for by a bare package object (same
``__path__``, no re-exports) before importing it.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

_LOADED = """
import importlib.util, json, sys, types
if {bare_root}:
    spec = importlib.util.find_spec("conveyor")
    root = types.ModuleType("conveyor")
    root.__path__ = list(spec.submodule_search_locations)
    sys.modules["conveyor"] = root
import {module}
print(json.dumps(sorted(sys.modules)))
"""


def loaded_by(module: str, *, bare_root: bool = True) -> set[str]:
    """The modules a fresh interpreter holds after ``import module``."""
    code = _LOADED.format(module=module, bare_root=bare_root)
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    return set(json.loads(done.stdout))


def _under(modules: set[str], package: str) -> set[str]:
    return {m for m in modules if m == package or m.startswith(package + ".")}


@pytest.mark.parametrize(
    ("module", "forbidden"),
    [
        # Logging is set up before anything else runs: no worker, no psutil behind it.
        ("conveyor.logs", ("conveyor.worker", "psutil", "conveyor.cli")),
        # Eager mode is installed by conveyor.testing; the app never imports it.
        ("conveyor.app", ("conveyor.worker", "conveyor.testing", "conveyor.cli")),
        # The metrics read a protocol the worker fits, not the worker.
        ("conveyor.metrics", ("conveyor.worker", "conveyor.cli")),
        # The dashboard shares time formatting with the CLI through conveyor.timefmt.
        ("conveyor.dashboard.views", ("conveyor.cli",)),
    ],
)
def test_a_module_loads_nothing_above_it(module: str, forbidden: tuple[str, ...]) -> None:
    loaded = loaded_by(module)
    assert module in loaded
    for package in forbidden:
        assert not _under(loaded, package), f"import {module} loaded {package}"


def test_import_conveyor_loads_no_cli_dashboard_or_testing_helpers() -> None:
    loaded = loaded_by("conveyor", bare_root=False)
    for package in ("conveyor.cli", "conveyor.dashboard", "conveyor.testing", "starlette"):
        assert not _under(loaded, package), f"import conveyor loaded {package}"
