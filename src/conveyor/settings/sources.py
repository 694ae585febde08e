"""Where each setting's value comes from, strongest first, skipping values that cannot work.

For a setting ``x_y`` the candidates are, in order:

1. a keyword argument (a CLI flag, or ``Settings(x_y=...)`` in code),
2. ``CONVEYOR_X_Y`` in the environment, then in ``.env``,
3. ``X_Y`` (the seeds' name) in the environment, then in ``.env``,
4. ``conveyor.toml`` / ``[tool.conveyor]`` of ``pyproject.toml``: ``[worker] y`` for a
   ``worker_y`` setting, a top-level ``x_y`` for the others,
5. the default.

The first candidate that is usable wins. One that is not (``LOG_LEVEL=verbose``) becomes a
`Problem` and the next one is tried, so a variable meant for another program never stops an
import. Keyword arguments are not skipped: a wrong one is the caller's error.
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Iterator, Mapping
from contextlib import suppress
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Annotated, Any

from pydantic import TypeAdapter, ValidationError
from pydantic.fields import FieldInfo

from conveyor.errors import ConfigError
from conveyor.settings.files import DotEnv, read_file, table_name
from conveyor.settings.names import PREFIX, names_of, typos
from conveyor.settings.report import Origin, Problem, shown_value

#: Top-level file keys that belong to `conveyor run`'s pools, not to `Settings`.
_SUPERVISOR_KEYS = frozenset(
    {"_path", "worker", "pools", "queue_multi_worker", "queue_default_worker"}
)


@dataclass(frozen=True, slots=True)
class Layers:
    """The environment, ``.env`` and the settings file, read once."""

    env: Mapping[str, tuple[str, str]]  # NAME -> (name as written, value)
    dotenv: DotEnv = field(default_factory=DotEnv)
    file: Mapping[str, Any] = field(default_factory=dict)
    #: Why the settings file could not be read (broken TOML), if it could not.
    file_error: str | None = None
    #: The file's values by setting (`file_values`).
    from_file: Mapping[str, list[tuple[Any, Origin]]] = field(default_factory=dict)

    @classmethod
    def read(cls, root: Path | None = None, environ: Mapping[str, str] | None = None) -> Layers:
        """The layers of the working directory (or ``root``) and ``os.environ``."""
        root = root or Path.cwd()
        env = os.environ if environ is None else environ
        try:
            file, error = read_file(root), None
        except ConfigError as exc:
            file, error = {}, str(exc)
        upper = {k.upper(): (k, v) for k, v in env.items()}
        return cls(upper, DotEnv.read(root), file, error, file_values(file))

    def variables(self) -> list[str]:
        """Every variable name set in the environment or ``.env``."""
        return [n for n, _ in self.env.values()] + [n for n, _ in self.dotenv.values.values()]

    def candidates(self, name: str) -> Iterator[tuple[Any, Origin]]:
        """The values of setting ``name``, strongest first (empty variables are unset)."""
        for var in names_of(name):
            if var in self.env and self.env[var][1].strip():
                yield self.env[var][1], Origin("env", self.env[var][0])
            if var in self.dotenv.values and self.dotenv.values[var][1].strip():
                written, value = self.dotenv.values[var]
                path = str(self.dotenv.path)
                yield value, Origin(".env", written, path, self.dotenv.lines.get(var, 0))
        yield from self.from_file.get(name, [])

    def present(self, var: str) -> bool:
        """Whether ``var`` is set (to anything) in the environment or ``.env``."""
        return var in self.env or var in self.dotenv.values


def file_values(file: Mapping[str, Any]) -> dict[str, list[tuple[Any, Origin]]]:
    """The settings file's values by setting: ``[worker] concurrency`` is
    ``worker_concurrency``; ``timeout`` and ``tries`` also give the job defaults, as they
    do for `conveyor run`'s pools."""
    if not file:
        return {}
    path = str(file["_path"])
    out: dict[str, list[tuple[Any, Origin]]] = {}

    def add(setting: str, value: Any, section: str | None, key: str) -> None:
        where = f"{table_name(path, section)} {key}"
        out.setdefault(setting, []).append((value, Origin("file", where, path)))

    worker = file.get("worker", {})
    for key, value in worker.items() if isinstance(worker, dict) else ():
        add(f"worker_{key}", value, "worker", key)
        if key == "timeout":
            add("job_timeout", value, "worker", key)
        if key == "tries" and (isinstance(value, int) or str(value).strip().isdigit()):
            add("max_retries", int(value) - 1, "worker", key)
    for key, value in file.items():
        # The job store is chosen only by CONVEYOR_URL, a flag or code, never by a file.
        if key not in _SUPERVISOR_KEYS and key != "conveyor_url" and not isinstance(value, dict):
            add(key, value, None, key)
    return out


@dataclass(slots=True)
class Resolution:
    """The values chosen (as written), where each came from, and what was skipped."""

    values: dict[str, Any] = field(default_factory=dict)
    checked: dict[str, Any] = field(default_factory=dict)  # the same values, parsed
    origins: dict[str, Origin] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)
    notices: list[str] = field(default_factory=list)


@cache
def _adapter(annotation: Any, metadata: tuple[Any, ...]) -> TypeAdapter[Any]:
    return TypeAdapter(Annotated[(annotation, *metadata)] if metadata else annotation)


def check_one(info: FieldInfo, value: Any) -> Any:
    """``value`` parsed as the field ``info`` parses it; `ValidationError` if it cannot."""
    annotation: Any = info.annotation  # a type form, hashable like every type
    return _adapter(annotation, tuple(info.metadata)).validate_python(value)


def resolve(
    fields: Mapping[str, FieldInfo], layers: Layers, given: Mapping[str, Any]
) -> Resolution:
    """Pick each field's value from ``given`` then ``layers``, skipping unusable ones."""
    out = Resolution()
    for name, info in fields.items():
        if name in given:
            out.origins[name] = Origin("argument")
            with suppress(ValidationError):  # refused when the model is built, as usual
                out.checked[name] = check_one(info, given[name])
            continue
        out.origins[name] = Origin("default")
        for raw, origin in layers.candidates(name):
            try:
                out.checked[name] = check_one(info, raw)
            except ValidationError as exc:
                out.problems.append(_problem(name, info, raw, origin, exc))
                continue
            out.values[name], out.origins[name] = raw, origin
            break
    if "conveyor_url" in fields and "conveyor_url" not in given:
        _seed_url(fields["conveyor_url"], layers, out)
    _notices(fields, layers, given, out)
    return out


def _seed_url(info: FieldInfo, layers: Layers, out: Resolution) -> None:
    """``QUEUE_CONNECTION`` and its companions choose the store when ``CONVEYOR_URL`` does
    not (`conveyor.settings.seeds`); a value that cannot be mapped is a `Problem`."""
    from conveyor.settings.seeds import derive_url, unused_sqs_notice

    connection = out.checked.get("queue_connection")
    chosen = out.origins["conveyor_url"].kind != "default"
    if connection is not None and chosen:
        if not str(out.checked.get("conveyor_url", "")).startswith(_SCHEMES[connection]):
            out.notices.append(
                f"QUEUE_CONNECTION={connection!r} is not used: "
                f"{out.origins['conveyor_url'].name or 'CONVEYOR_URL'} chooses the store"
            )
    elif connection is not None:
        derived = derive_url(layers, connection, out.origins["queue_connection"])
        if derived.problem is not None:
            out.problems.append(derived.problem)
        elif derived.url is not None:
            try:
                out.checked["conveyor_url"] = check_one(info, derived.url)
            except ValidationError as exc:
                out.problems.append(
                    _problem("conveyor_url", info, derived.url, derived.origin, exc)
                )
            else:
                out.values["conveyor_url"] = derived.url
                out.origins["conveyor_url"] = derived.origin
    if out.origins["conveyor_url"].kind == "default" and not any(
        p.fields == ("conveyor_url",) for p in out.problems
    ):
        empty = _empty_url(layers, str(info.default))
        if empty is not None:
            out.problems.append(empty)
    sqs = connection == "sqs" or str(out.checked.get("conveyor_url", "")).startswith("sqs:")
    if not sqs:
        notice = unused_sqs_notice(layers)
        if notice is not None:
            out.notices.append(notice)


def _empty_url(layers: Layers, default: str) -> Problem | None:
    """``CONVEYOR_URL=`` (empty) when nothing else chose the store: a `Problem`, not the
    default store. An empty line in a systemd ``EnvironmentFile`` or a ``.env`` template
    means a URL was meant to go there; quietly using SQLite would split the jobs."""
    for var in names_of("conveyor_url"):
        if var in layers.env and not layers.env[var][1].strip():
            where = Origin("env", layers.env[var][0])
        elif var in layers.dotenv.values and not layers.dotenv.values[var][1].strip():
            line = layers.dotenv.lines.get(var, 0)
            where = Origin(".env", layers.dotenv.values[var][0], str(layers.dotenv.path), line)
        else:
            continue
        return Problem(
            ("conveyor_url",),
            f"{where.assignment(repr(''))}: the job store's URL is empty; set it (e.g. "
            f"redis://127.0.0.1:6379/0), or remove it to use the default {default}",
        )
    return None


#: The URL schemes each ``QUEUE_CONNECTION`` stands for.
_SCHEMES: dict[str, tuple[str, ...]] = {
    "redis": ("redis", "rediss", "unix"),
    "database": ("postgres", "sqlite"),
    "sqs": ("sqs",),
    "sync": ("memory",),
}


def _problem(name: str, info: FieldInfo, raw: Any, origin: Origin, exc: ValidationError) -> Problem:
    error = exc.errors()[0]
    reason = str(error["msg"]).removeprefix("Value error, ")
    hint = f" ({info.description})" if info.description else ""
    text = f"{origin.assignment(shown_value(name, raw))}: {reason}{hint}"
    unprefixed = origin.kind in ("env", ".env") and not origin.name.upper().startswith(PREFIX)
    return Problem((name,), text, PREFIX + name.upper() if unprefixed else None)


def _notices(
    fields: Mapping[str, FieldInfo], layers: Layers, given: Mapping[str, Any], out: Resolution
) -> None:
    if layers.file_error is not None:
        out.problems.append(Problem((), layers.file_error))
    for var, known in typos(layers.variables(), fields):
        out.notices.append(
            f"{var} is not a variable Conveyor reads: did you mean {known}? (it is ignored)"
        )
    redis_only = layers.present("REDIS_URL") and not layers.present("CONVEYOR_URL")
    if (
        redis_only
        and "conveyor_url" not in given
        and out.origins.get("conveyor_url") == Origin("default")
    ):
        out.notices.append(
            "REDIS_URL is set but Conveyor does not store jobs there (it is often a "
            "cache's): only CONVEYOR_URL (or QUEUE_CONNECTION=redis) chooses the job store, "
            f"so the default {fields['conveyor_url'].default} is used. To keep jobs in that "
            "Redis, set QUEUE_CONNECTION=redis, or CONVEYOR_URL to the same URL (in .env: "
            "CONVEYOR_URL=${REDIS_URL})"
        )
    _file_notices(fields, layers.file, out)


def _file_notices(
    fields: Mapping[str, FieldInfo], file: Mapping[str, Any], out: Resolution
) -> None:
    if not file:
        return
    path = str(file["_path"])
    worker = file.get("worker", {})
    worker_keys = [f.removeprefix("worker_") for f in fields if f.startswith("worker_")]
    worker_keys += ["timeout", "tries", "processes"]
    top_keys = [f for f in fields if f != "conveyor_url"]
    unknown = [
        (table_name(path, "worker"), k, worker_keys)
        for k in (worker if isinstance(worker, dict) else {})
        if k not in worker_keys
    ]
    unknown += [
        (table_name(path, None), k, top_keys)
        for k, v in file.items()
        if k not in _SUPERVISOR_KEYS and not isinstance(v, dict) and k not in fields
    ]
    for table, key, known in unknown:
        match = difflib.get_close_matches(key, known, n=1, cutoff=0.75)
        if match:
            out.notices.append(
                f"{path}: {table} {key} is not a Conveyor setting: did you mean {match[0]}? "
                "(it is ignored)"
            )
