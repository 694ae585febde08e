"""Pools: named groups of identical worker processes, and where their settings come from.

A pool's setting ``key`` is looked up, most specific first:

1. the environment variable ``<POOL>_WORKER_<KEY>`` (``MAIL_WORKER_MAX_JOBS``),
2. ``[pools.<pool>]`` in ``conveyor.toml`` (or ``[tool.conveyor.pools.<pool>]`` in
   ``pyproject.toml``),
3. the environment variable ``WORKER_<KEY>`` (``WORKER_MAX_JOBS``),
4. ``[worker]`` in the same file (which `conveyor worker` reads too),
5. the built-in default.

Every variable may also be written ``CONVEYOR_<NAME>`` (``CONVEYOR_WORKER_MAX_JOBS``), which
wins over the unprefixed name, as in `conveyor.settings`. The environment includes a
``.env`` file in the working directory (real variables win). Durations accept units
(``30s``, ``5m``) and the memory limit sizes (``512MB``), as everywhere (`pool_keys` has
every key and its parser). ``QUEUE_MULTI_WORKER`` picks one pool for every queue (false,
the default) or one pool per queue type (true); ``QUEUE_DEFAULT_WORKER`` names the default
pool (``jobs``).
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from conveyor.errors import ConfigError
from conveyor.settings import Settings
from conveyor.settings.files import read_file as read_table
from conveyor.settings.names import PREFIX
from conveyor.supervisor.pool_keys import KEYS
from conveyor.supervisor.pool_keys import flag as parse_flag

#: The seed's pools; any other name works too.
BUILTIN_POOLS = ("jobs", "mail", "events")
#: Words `conveyor run` reads as commands, so they cannot name a pool.
RESERVED = frozenset({"single", "multi", "status", "stop", "restart"})
DEFAULT_POOL = "jobs"
#: Where tasks that name no queue go; the default pool serves it in multi mode.
DEFAULT_QUEUE = "default"
DEFAULT_GRACE = 30.0

_NAME = re.compile(r"^[a-z][a-z0-9_-]{0,62}$")


@dataclass(frozen=True, slots=True)
class Pool:
    """One pool's settings. ``None`` means "the worker's own default"."""

    name: str
    processes: int = 1
    concurrency: int | None = None
    #: Queue names or globs; ``None`` serves every queue.
    queues: tuple[str, ...] | None = None
    priorities: tuple[str, ...] | None = None
    job_types: tuple[str, ...] | None = None
    #: A worker exits cleanly (and is replaced) after this many jobs...
    max_jobs: int | None = None
    #: ...above this resident memory, in MB...
    memory_limit: int | None = None
    #: ...or after this many seconds.
    max_time: float | None = None
    #: Default job timeout (JOB_TIMEOUT) in this pool's processes, in seconds.
    timeout: float | None = None
    #: Longest idle wait between polls, in seconds.
    sleep: float | None = None
    #: Laravel's ``--tries``: runs a job gets in total, so MAX_RETRIES = tries - 1.
    tries: int | None = None
    #: Seconds a stopping worker lets running jobs finish.
    grace_period: float | None = None
    #: Take from the first of ``queues`` with a ready job (``--queue``), not by priority.
    queues_ordered: bool | None = None
    #: Retry delays of tasks without their own backoff (``--backoff``), one per attempt.
    backoff: tuple[float, ...] | None = None

    @property
    def grace(self) -> float:
        """The grace period workers of this pool get (the worker default when unset)."""
        return DEFAULT_GRACE if self.grace_period is None else self.grace_period

    def worker_args(self) -> list[str]:
        """The ``conveyor worker`` flags that give a process this pool's settings."""
        args = ["--pool", self.name]
        flags: list[tuple[str, Any]] = [
            ("--concurrency", self.concurrency),
            (
                "--queue" if self.queues_ordered else "--queues",
                self.queues and ",".join(self.queues),
            ),
            ("--priorities", self.priorities and ",".join(self.priorities)),
            ("--job-types", self.job_types and ",".join(self.job_types)),
            ("--max-jobs", self.max_jobs),
            ("--memory-limit", self.memory_limit),
            ("--max-time", self.max_time),
            ("--sleep", self.sleep),
            ("--grace-period", self.grace_period),
            ("--backoff", self.backoff and ",".join(f"{b:g}" for b in self.backoff)),
        ]
        for flag, value in flags:
            if value is not None:
                args += [flag, f"{value:g}" if isinstance(value, float) else str(value)]
        return args

    def worker_env(self) -> dict[str, str]:
        """Environment variables for this pool's processes (those without a worker flag)."""
        env = {"CONVEYOR_POOL": self.name}
        # Caps on every job the pool runs, and the defaults of jobs enqueued from it. The
        # CONVEYOR_ names too, so the pool's values win over the supervisor's own.
        if self.timeout is not None:
            env["WORKER_TIMEOUT"] = env["JOB_TIMEOUT"] = f"{self.timeout:g}"
        if self.tries is not None:
            env["WORKER_TRIES"] = str(self.tries)
            env["MAX_RETRIES"] = str(self.tries - 1)
        return env | {PREFIX + k: v for k, v in env.items() if k != "CONVEYOR_POOL"}


@dataclass(frozen=True, slots=True)
class PoolsConfig:
    """Every pool the configuration knows, and how `conveyor run` picks among them."""

    multi: bool
    default_pool: str
    env: Mapping[str, str] = field(repr=False)
    file: Mapping[str, Any] = field(repr=False)
    known: tuple[str, ...] = ()

    def pool(self, name: str) -> Pool:
        """The pool ``name`` (any valid name), with its default queues for multi mode."""
        check_pool_name(name)
        values = {key: self._lookup(name, key) for key in KEYS}
        if values["queues"] is None:
            own = (name, DEFAULT_QUEUE) if name == self.default_pool else (name,)
            values["queues"] = tuple(dict.fromkeys(own))
        if values["processes"] is None:
            values["processes"] = 1
        return Pool(name=name, **values)

    def single(self) -> Pool:
        """One pool for every queue: the default pool's settings, queues from
        ``WORKER_QUEUES`` (all when unset)."""
        pool = self.pool(self.default_pool)
        return replace(pool, queues=self._general("queues"))

    def for_worker(self, name: str) -> Pool:
        """The settings of one ``conveyor worker --pool NAME`` process, as ``conveyor run``
        gives its workers: `pool` (``<POOL>_WORKER_*``, then ``WORKER_*``), except that the
        default pool without ``QUEUE_MULTI_WORKER`` serves every queue (`single`) unless
        its own queues are set (``JOBS_WORKER_QUEUES``)."""
        pool = self.pool(name)
        if name == self.default_pool and not self.multi and self._own(name, "queues") is None:
            return replace(pool, queues=self._general("queues"))
        return pool

    def multi_pools(self) -> list[Pool]:
        """One pool per queue type: the seed's, the configured ones and the default."""
        names = dict.fromkeys((*BUILTIN_POOLS, *self.known, self.default_pool))
        return [self.pool(n) for n in names]

    def selected(self) -> list[Pool]:
        """What a bare ``conveyor run`` starts, following ``QUEUE_MULTI_WORKER``."""
        return self.multi_pools() if self.multi else [self.single()]

    def resolve(self, words: list[str]) -> list[Pool]:
        """``[]`` (by QUEUE_MULTI_WORKER), ``["single"]``, ``["multi"]`` or pool names."""
        if not words:
            return self.selected()
        if words == ["single"]:
            return [self.single()]
        if words == ["multi"]:
            return self.multi_pools()
        return [self.pool(n) for n in dict.fromkeys(words)]

    # -- lookups ---------------------------------------------------------------------------
    def _lookup(self, pool: str, key: str) -> Any:
        own = self._own(pool, key)
        return own if own is not None else self._general(key)

    def _own(self, pool: str, key: str) -> Any:
        """``key`` set for ``pool`` itself (its variable or its file table), else ``None``."""
        for var in _prefixed(f"{env_prefix(pool)}_WORKER_{key.upper()}"):
            if var in self.env:
                return _parse(key, self.env[var], var)
        section = self.file.get("pools", {}).get(pool, {})
        if key in section:
            return _parse(key, section[key], f"[pools.{pool}] {key} in {self.file['_path']}")
        return None

    def _general(self, key: str) -> Any:
        for var in _prefixed(f"WORKER_{key.upper()}"):
            if var in self.env:
                return _parse(key, self.env[var], var)
        section = self.file.get("worker", {})
        if key in section:
            return _parse(key, section[key], f"[worker] {key} in {self.file['_path']}")
        return None


def _prefixed(name: str) -> tuple[str, str]:
    """``name``'s variables, strongest first: ``CONVEYOR_<NAME>``, then ``<NAME>``."""
    return (PREFIX + name, name)


def _env(env: Mapping[str, str], name: str) -> tuple[str, str] | None:
    """``(variable, value)`` of ``name`` (prefixed first) when set."""
    for var in _prefixed(name):
        if var in env:
            return var, env[var]
    return None


def _parse(key: str, value: Any, where: str) -> Any:
    if isinstance(value, str) and value.strip() == "" and key not in ("queues", "priorities"):
        return None
    try:
        return KEYS[key](value)
    except ValueError as exc:
        raise ConfigError(f"{where}={value!r}: {exc}") from None


def env_prefix(pool: str) -> str:
    """The variable prefix of a pool: ``account-sync`` → ``ACCOUNT_SYNC``."""
    return pool.upper().replace("-", "_")


def check_pool_name(name: str) -> str:
    """``name`` if it can name a pool, else a `ConfigError` saying why."""
    if not _NAME.match(name):
        raise ConfigError(
            f"pool name {name!r} is not valid: use lower-case letters, digits, '-' and '_', "
            "starting with a letter (e.g. mail, account-sync)"
        )
    if name in RESERVED:
        raise ConfigError(
            f"pool name {name!r} is reserved for `conveyor run {name}`; pick another name"
        )
    return name


def _bool(value: Any, where: str) -> bool:
    try:
        return parse_flag(value)
    except ValueError as exc:
        raise ConfigError(f"{where}={value!r}: {exc}") from None


def read_env(root: Path | None = None) -> dict[str, str]:
    """The process environment over a ``.env`` file in ``root`` (the working directory)."""
    from dotenv import dotenv_values

    path = (root or Path.cwd()) / ".env"
    values = dotenv_values(path) if path.is_file() else {}
    return {**{k: v for k, v in values.items() if v is not None}, **os.environ}


_ENV_POOL = re.compile(r"^([A-Z][A-Z0-9_]*?)_WORKER_(" + "|".join(k.upper() for k in KEYS) + r")$")


def load_pools(env: Mapping[str, str] | None = None, root: Path | None = None) -> PoolsConfig:
    """Read the pools configuration from the environment and ``conveyor.toml`` /
    ``pyproject.toml`` in ``root`` (the working directory); a wrong value is a
    `ConfigError` naming the variable or file key."""
    env = read_env(root) if env is None else dict(env)
    file = read_file(root or Path.cwd())
    where = file.get("_path", "")
    multi_env = _env(env, "QUEUE_MULTI_WORKER")
    multi = (
        _bool(multi_env[1], multi_env[0])
        if multi_env is not None
        else _bool(file.get("queue_multi_worker", False), f"queue_multi_worker in {where}")
    )
    default_env = _env(env, "QUEUE_DEFAULT_WORKER")
    default = str(
        (default_env and default_env[1]) or file.get("queue_default_worker") or DEFAULT_POOL
    ).strip()
    try:
        check_pool_name(default)
    except ConfigError as exc:
        raise ConfigError(f"QUEUE_DEFAULT_WORKER: {exc}") from None
    known = [str(n) for n in file.get("pools", {})]
    known += [m.group(1).lower() for v in env if (m := _ENV_POOL.match(v.removeprefix(PREFIX)))]
    for name in known:
        check_pool_name(name)
    config = PoolsConfig(multi, default, env, file, tuple(dict.fromkeys(known)))
    for pool in config.multi_pools():  # validate every value now, not at first use
        pool.worker_args()
    return config


def read_file(root: Path) -> dict[str, Any]:
    """The ``conveyor.toml`` table, else ``[tool.conveyor]`` of ``pyproject.toml``, else
    ``{}``; ``_path`` says which file it came from. Unknown pool keys are refused."""
    table = read_table(root)
    if table:
        _check_shape(table, Path(table["_path"]))
    return table


def _check_shape(table: dict[str, Any], path: Path) -> None:
    # Unknown keys are typos more often than not: refuse them with the accepted names.
    # Other sections of the same file (e.g. a scheduler's) belong to other features.
    # [worker] also holds what only `conveyor worker` reads (mode, metrics_interval, ...).
    worker_only = {f[7:] for f in Settings.model_fields if f.startswith("worker_")}
    for name, section in [("worker", table.get("worker", {}))] + [
        (f"pools.{p}", s) for p, s in table.get("pools", {}).items()
    ]:
        allowed = set(KEYS) | (worker_only if name == "worker" else set())
        known = ", ".join(sorted(allowed))
        if not isinstance(section, dict):
            raise ConfigError(f"{path}: [{name}] must be a table of settings ({known})")
        for key in section:
            if key not in allowed:
                raise ConfigError(
                    f"{path}: [{name}] has an unknown setting {key!r}; known: {known}"
                )
