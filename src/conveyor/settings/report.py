"""What reading the settings found wrong, said once: a warning at import, an error at start.

A `Problem` is a value Conveyor cannot use: while the app is imported it is a
`ConfigWarning` (the value is skipped, so a web app that only enqueues keeps working), and
a ``conveyor`` command or a worker refuses to start with it (`Settings.raise_problems`).
A notice (a likely typo, ``REDIS_URL`` not used) is only ever a warning.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import SecretStr

from conveyor.redaction import MASK, origin, redact_url

#: Settings whose whole value is a secret (a mistyped one is never echoed in full).
SECRET_FIELDS = frozenset({"log_slack_webhook_url", "sentry_dsn"})


class ConfigWarning(UserWarning):
    """A setting Conveyor skipped or a variable it does not read (a likely typo).

    Raised as an error by ``python -W error::conveyor.settings.ConfigWarning``, e.g. in CI.
    """


@dataclass(frozen=True, slots=True)
class Origin:
    """Where a setting's value came from, as `conveyor config` shows it."""

    kind: Literal["argument", "env", ".env", "file", "default"]
    #: The variable, or the file key (``[tool.conveyor.worker] concurrency``).
    name: str = ""
    path: str = ""
    line: int = 0

    def __str__(self) -> str:
        if self.kind == "env":
            return f"env {self.name}"
        if self.kind == ".env":
            return f".env {self.name} (line {self.line})"
        if self.kind == "file":
            return f"{Path(self.path).name} {self.name}"
        return self.kind

    def assignment(self, shown: str) -> str:
        """``NAME='value'`` with where it is written when that is a file."""
        if self.kind == ".env":
            return f"{self.name}={shown} (in {self.path}, line {self.line})"
        if self.kind == "file":
            return f"{self.name} = {shown} (in {self.path})"
        return f"{self.name}={shown}"


@dataclass(frozen=True, slots=True)
class Problem:
    """A value Conveyor cannot use; ``text`` names it, the value and what is accepted."""

    fields: tuple[str, ...]
    text: str
    #: The variable a user can set to give Conveyor its own value, when that helps.
    own_name: str | None = None

    def warning(self, fallback: str) -> str:
        """The import-time warning: the problem, what is used instead, what to do."""
        own = f", or set {self.own_name} for Conveyor alone" if self.own_name else ""
        return (
            f"Conveyor setting skipped: {self.text}; using {fallback} instead. Fix it{own}: "
            "`conveyor` commands and workers refuse to start until then "
            "(`conveyor config` shows every setting)"
        )


def shown_value(field: str, value: Any) -> str:
    """A value as a message may quote it: URLs without their secrets, secrets masked."""
    if isinstance(value, SecretStr):
        value = value.get_secret_value()
    if field in SECRET_FIELDS:
        return repr(origin(value)) if isinstance(value, str) else repr(MASK)
    if field == "conveyor_url" and isinstance(value, str):
        return repr(redact_url(value))
    return repr(value)


def explain(problems: list[Problem] | tuple[Problem, ...]) -> str:
    """The `ConfigError` text for ``problems``: a header, then one line each."""
    lines = ["invalid Conveyor settings:"]
    for problem in problems:
        own = f" (or set {problem.own_name} for Conveyor alone)" if problem.own_name else ""
        lines.append(f"  {problem.text}{own}")
    return "\n".join(lines)


#: Python's own once-per-message bookkeeping (reset when warning filters change, as in
#: each test), so a command that reads the settings twice warns once.
_registry: dict[Any, Any] = {}


def warn(message: str) -> None:
    """Issue ``message`` as a `ConfigWarning`, once per process."""
    warnings.warn_explicit(
        message,
        ConfigWarning,
        "conveyor-settings",
        0,
        module="conveyor.settings",
        registry=_registry,
    )
