"""Run mypy on the typing proofs, so `pytest` alone shows whether they still hold."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PROOF = Path(__file__).with_name("test_enqueue_types.py")

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("mypy") is None, reason="mypy is not installed"
)


def run_mypy(*paths: Path) -> subprocess.CompletedProcess[str]:
    """mypy with the project's configuration (strict) on ``paths``."""
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "mypy",
            "--config-file",
            str(ROOT / "pyproject.toml"),
            "--no-error-summary",
            "--hide-error-context",
            *map(str, paths),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=110,
        check=False,
    )


def test_the_enqueue_type_proofs_pass_mypy() -> None:
    # Given the proofs file, where every `# type: ignore[...]` marks a call mypy must reject
    # When mypy checks it strictly
    result = run_mypy(PROOF)
    # Then it is clean: the right calls type-check, and every ignore was needed
    assert result.returncode == 0, result.stdout + result.stderr


def test_an_unneeded_ignore_would_be_reported(tmp_path: Path) -> None:
    # Given a correct call carrying an ignore it does not need
    sample = tmp_path / "sample.py"
    sample.write_text(
        "from conveyor import Conveyor\n"
        "app = Conveyor('memory://')\n"
        "@app.task\n"
        "def double(n: int) -> int:\n"
        "    return 2 * n\n"
        "def use() -> None:\n"
        "    double.enqueue(1)  # type: ignore[arg-type]\n"
        "    double.enqueue('1')\n"
    )
    # When mypy checks it with the project's configuration
    result = run_mypy(sample)
    # Then both the needless ignore and the wrong call are errors: the proofs mean something
    assert result.returncode == 1
    assert 'Unused "type: ignore"' in result.stdout
    assert "sample.py:8: error" in result.stdout
    assert "[arg-type]" in result.stdout
