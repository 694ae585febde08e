"""Running the real CLI in a subprocess, as the CLI tests do."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable, Mapping
from pathlib import Path

#: ``run(*args, extra_env=None, timeout=60.0)``: ``python -m conveyor ARGS...``, finished.
Run = Callable[..., subprocess.CompletedProcess[str]]


def conveyor_cli(cwd: Path, env: Mapping[str, str]) -> Run:
    """A function running ``python -m conveyor ARGS...`` in ``cwd`` with ``env`` (plus
    ``extra_env``), stdin closed, bounded by ``timeout``; it returns the finished process."""

    def run(
        *args: str, extra_env: Mapping[str, str] | None = None, timeout: float = 60.0
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "conveyor", *args],
            env={**env, **(extra_env or {})},
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=timeout,
            stdin=subprocess.DEVNULL,
            check=False,
        )

    return run
