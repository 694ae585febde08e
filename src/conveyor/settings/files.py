"""The files settings are read from: ``.env``, and ``conveyor.toml`` or ``pyproject.toml``.

Both live in the working directory. ``conveyor.toml`` holds the Conveyor table at its top
level; ``pyproject.toml`` holds it under ``[tool.conveyor]``. `conveyor worker`, `conveyor
run` and `conveyor export` read the same table (`conveyor.settings.sources` maps it to
settings, `conveyor.supervisor.config` to pools).
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from conveyor.errors import ConfigError


@dataclass(frozen=True, slots=True)
class DotEnv:
    """The variables of a ``.env`` file, by upper-cased name, with the line each is on."""

    path: Path | None = None
    values: dict[str, tuple[str, str]] = field(default_factory=dict)  # NAME -> (name, value)
    lines: dict[str, int] = field(default_factory=dict)

    @classmethod
    def read(cls, root: Path) -> DotEnv:
        """``root/.env``, or an empty one when there is none."""
        from dotenv import dotenv_values

        path = root / ".env"
        if not path.is_file():
            return cls()
        values = {k.upper(): (k, v) for k, v in dotenv_values(path).items() if v is not None}
        lines: dict[str, int] = {}
        assignment = re.compile(r"^\s*(?:export\s+)?([A-Za-z_][A-Za-z0-9_.]*)\s*=")
        text = path.read_text(encoding="utf-8", errors="replace")
        for number, line in enumerate(text.splitlines(), start=1):
            if (match := assignment.match(line)) is not None:
                lines[match.group(1).upper()] = number  # the last assignment is the one used
        return cls(path.resolve(), values, lines)


def read_file(root: Path) -> dict[str, Any]:
    """The ``conveyor.toml`` table, else ``[tool.conveyor]`` of ``pyproject.toml``, else
    ``{}``; ``_path`` says which file it came from. Only TOML errors are refused here: each
    reader checks the keys it knows."""
    path = root / "conveyor.toml"
    if path.is_file():
        table = load_toml(path)
    else:
        path = root / "pyproject.toml"
        if not path.is_file():
            return {}
        table = load_toml(path).get("tool", {}).get("conveyor", {})
    if not isinstance(table, dict):
        raise ConfigError(f"{path}: the Conveyor configuration must be a table")
    return {**table, "_path": str(path)}


def load_toml(path: Path) -> dict[str, Any]:
    """``path`` parsed, or a `ConfigError` naming the file and the TOML error."""
    try:
        with path.open("rb") as f:
            return tomllib.load(f)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path} is not valid TOML: {exc}") from None


def table_name(path: str, section: str | None) -> str:
    """How a section of the file is written: ``[tool.conveyor.worker]`` or ``[worker]``."""
    base = "tool.conveyor" if Path(path).name == "pyproject.toml" else ""
    parts = [p for p in (base, section) if p]
    return f"[{'.'.join(parts)}]" if parts else "(top level)"
