"""Backends, chosen by URL scheme through the ``conveyor.backends`` entry-point group.

An entry point's name is a URL scheme; its value is a `Backend` subclass, or a factory called
as ``factory(url, clock=clock)`` that returns one. Conveyor registers its own stores the same
way (pyproject.toml); `BUILTIN` is that table again, used when the package metadata is missing
(a source tree on ``sys.path``). The entry points are read once per process, and a store's
module (with its driver) is imported only when its scheme is used.

A scheme belongs to one distribution. One that another distribution also claims, a built-in
one included, is refused when used, naming both: a package that quietly took over
``redis://`` would send your jobs, and your credentials, somewhere you did not choose.
docs/backends.md ("Writing a store") is the guide for store authors.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from conveyor.clock import SYSTEM_CLOCK, Clock
from conveyor.errors import ConfigError

if TYPE_CHECKING:
    from importlib.metadata import EntryPoint

    from conveyor.backends.base import Backend

#: The entry-point group third-party stores register in.
GROUP = "conveyor.backends"

#: Conveyor's own stores, scheme → ``module:Class``: pyproject.toml registers the same.
BUILTIN: dict[str, str] = {
    "memory": "conveyor.backends.memory:MemoryBackend",
    "sqlite": "conveyor.backends.sqlite:SqliteBackend",
    "redis": "conveyor.backends.redis:RedisBackend",
    "rediss": "conveyor.backends.redis:RedisBackend",
    "redis+sentinel": "conveyor.backends.redis:RedisBackend",
    "rediss+sentinel": "conveyor.backends.redis:RedisBackend",
    "redis+cluster": "conveyor.backends.redis.cluster:ClusterBackend",
    "postgresql": "conveyor.backends.postgres:PostgresBackend",
    "postgres": "conveyor.backends.postgres:PostgresBackend",
    "sqs": "conveyor.backends.sqs:SqsBackend",
}

#: The built-in URL schemes.
SCHEMES = tuple(BUILTIN)

# Built-in schemes whose driver comes with an extra: scheme -> (what is missing, extra).
_DRIVERS = {
    "redis": ("redis-py", "redis"),
    "rediss": ("redis-py", "redis"),
    "redis+sentinel": ("redis-py", "redis"),
    "rediss+sentinel": ("redis-py", "redis"),
    "redis+cluster": ("redis-py", "redis"),
    "postgresql": ("psycopg 3 and its pool", "postgres"),
    "postgres": ("psycopg 3 and its pool", "postgres"),
    "sqs": ("aiobotocore", "sqs"),
}
_OWN = "conveyor"


@dataclass(frozen=True, slots=True)
class Store:
    """One URL scheme's store: what to load and which distribution registered it."""

    scheme: str
    target: str  # "module:attribute", as in an entry point's value
    distribution: str
    rival: str | None = None  # another distribution claiming the same scheme: refused

    @property
    def builtin(self) -> bool:
        """Whether Conveyor itself provides this store."""
        return _normal(self.distribution) == _OWN


@functools.cache
def stores() -> dict[str, Store]:
    """Every store found, by scheme: the built-in ones and those plugged in by entry point."""
    from importlib.metadata import entry_points

    found = {scheme: Store(scheme, target, _OWN) for scheme, target in BUILTIN.items()}
    _add(found, entry_points(group=GROUP))
    return found


def _add(found: dict[str, Store], points: Iterable[EntryPoint]) -> None:
    for point in points:
        scheme = point.name.strip().lower()
        # Metadata without a Name field is broken, but must not break every other store.
        dist = (point.dist.name if point.dist is not None else None) or "unknown-distribution"
        held = found.get(scheme)
        if held is None:
            found[scheme] = Store(scheme, point.value, dist)
        elif _normal(dist) == _OWN:  # our own metadata: the same table, one lookup path
            rival = held.rival if held.builtin else held.distribution
            found[scheme] = Store(scheme, point.value, dist, rival)
        elif _normal(dist) != _normal(held.distribution) and held.rival is None:
            found[scheme] = replace(held, rival=dist)


def create_backend(url: str, *, clock: Clock = SYSTEM_CLOCK) -> Backend:
    """Build the backend for ``url`` (not yet opened)."""
    from conveyor.backends.base import Backend
    from conveyor.redaction import redact_url

    scheme, sep, _ = url.partition("://")
    if not sep:
        raise ConfigError(
            f"backend URL {redact_url(url)!r} has no scheme: use memory://, sqlite:///path.db, "
            "redis://host:6379/0 or postgresql://user@host/db (set CONVEYOR_URL)"
        )
    store = stores().get(scheme.lower())
    if store is None:
        raise ConfigError(
            f"unknown backend scheme {scheme.lower()!r} in {redact_url(url)!r}: {_menu()}"
        )
    if store.rival is not None:
        raise ConfigError(_contested(store))
    backend = _load(store)(url, clock=clock)
    if not isinstance(backend, Backend):
        raise ConfigError(
            f"the {store.scheme}:// store of the distribution {store.distribution!r} "
            f"({store.target}) returned {type(backend).__name__}, not a conveyor Backend; "
            f"upgrade or uninstall {store.distribution}"
        )
    return backend


def _load(store: Store) -> Callable[..., Any]:
    from importlib.metadata import EntryPoint

    try:
        factory = EntryPoint(store.scheme, store.target, GROUP).load()
    except Exception as exc:  # a plugin can fail to import in any way
        if (
            store.builtin
            and isinstance(exc, ImportError)
            and store.scheme in _DRIVERS
            and not (exc.name or "").startswith(f"{_OWN}.")
        ):
            needs, extra = _DRIVERS[store.scheme]
            raise ConfigError(
                f"the {store.scheme}:// backend needs {needs} ({exc}): "
                f"pip install 'conveyor[{extra}]'"
            ) from None
        if store.builtin:
            raise
        detail = (str(exc).splitlines() or [""])[0]
        raise ConfigError(
            f"the {store.scheme}:// store of the distribution {store.distribution!r} failed "
            f"to load ({store.target}): {type(exc).__name__}: {detail}; reinstall or upgrade "
            f"{store.distribution}, or uninstall it"
        ) from None
    if not callable(factory):
        raise ConfigError(
            f"the {store.scheme}:// entry point of the distribution {store.distribution!r} "
            f"({store.target}) is not a Backend class or factory; upgrade or uninstall "
            f"{store.distribution}"
        )
    return factory  # type: ignore[no-any-return]


def _contested(store: Store) -> str:
    if store.builtin:
        return (
            f"the distribution {store.rival!r} registers a store for {store.scheme}://, one of "
            "Conveyor's own schemes; a plugged-in store cannot replace a built-in one, so "
            f"Conveyor will not guess which one keeps your jobs. Uninstall {store.rival} "
            "(or ask its authors to register a scheme of its own)"
        )
    return (
        f"two distributions register a store for {store.scheme}://: {store.distribution!r} "
        f"and {store.rival!r}; Conveyor will not guess which one keeps your jobs. Uninstall "
        "one of them"
    )


def _menu() -> str:
    plugged = sorted((s for s in stores().values() if not s.builtin), key=lambda s: s.scheme)
    others = ", ".join(f"{s.scheme}:// ({s.distribution})" for s in plugged)
    return (
        "use one of memory://, sqlite:///path.db, redis://, rediss://, redis+sentinel://, "
        "rediss+sentinel://, redis+cluster://, postgresql://, "
        f"postgres://, sqs://REGION, or a plugged-in store: {others or 'none is installed'} "
        f"(stores plug in through the {GROUP!r} entry-point group; see docs/backends.md)"
    )


def _normal(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()
