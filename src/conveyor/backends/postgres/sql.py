"""The SQL the PostgreSQL backend runs: named blocks loaded from the `.sql` files beside this one.

Every table lives in the backend's own schema (``?schema=`` in the URL, default ``conveyor``),
so the templates say ``{jobs}`` and `Queries` fills in ``"schema".jobs``: the one place names
are spelled. ``{now}`` is the one expression for "now" (see `NOW`). Clauses that depend on a
worker's routing or a query's filters are built here; values always travel as parameters.
"""

from __future__ import annotations

import re
from functools import cache
from typing import Any

from conveyor.backends import globs, sqlfiles
from conveyor.backends.sqlfiles import load_blocks
from conveyor.job import JobQuery, Routing, State

#: Tables and indexes, by template name → unqualified name inside the schema.
TABLES = {
    "jobs": "jobs",
    "counters": "counters",
    "workers": "workers",
    "meta": "meta",
    "leases": "leases",
    "schedules": "schedules",
    "rates": "rate_windows",
    "slots": "slots",
    "paused": "paused_queues",
    "history": "history",
}

#: "Now" on the backend's clock, in seconds since the epoch. With the system clock the
#: caller passes ``now = None`` and the server's clock decides, so leases and schedules of
#: every process agree whatever their own clocks say; an injected clock (tests) passes its
#: time. ``statement_timestamp()`` is fixed for one statement, unlike ``clock_timestamp()``,
#: so every row a statement touches gets the same time.
NOW = "coalesce(%(now)s::float8, extract(epoch FROM statement_timestamp())::float8)"

#: Slots a template may leave for a clause built at run time.
SLOTS = frozenset({"routing", "filters"})

#: Identifiers we accept for a schema: plain lower-case names, so quoting never surprises.
SCHEMA_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")

_PLACEHOLDER = re.compile(r"\{(\w+)\}")

Params = dict[str, Any]


@cache
def load(filename: str) -> dict[str, str]:
    """The raw named blocks of one `.sql` file shipped with this package."""
    return load_blocks(__package__ or __name__, filename)


def quote(identifier: str) -> str:
    """A double-quoted SQL identifier."""
    return '"' + identifier.replace('"', '""') + '"'


class Queries:
    """The blocks of one file with table names qualified by one schema."""

    def __init__(self, schema: str, filename: str) -> None:
        self.schema = schema
        self.filename = filename
        self._names = {key: f"{quote(schema)}.{quote(t)}" for key, t in TABLES.items()}
        self._names["schema"] = quote(schema)
        self._names["now"] = NOW
        self._blocks = {name: self._fill(body) for name, body in load(filename).items()}

    def _fill(self, text: str) -> str:
        def sub(match: re.Match[str]) -> str:
            key = match.group(1)
            if key in self._names:
                return self._names[key]
            if key in SLOTS:
                return match.group(0)
            raise ValueError(f"{self.filename}: unknown placeholder {{{key}}}")

        return _PLACEHOLDER.sub(sub, text)

    def __getitem__(self, name: str) -> str:
        return self._blocks[name]

    def __contains__(self, name: str) -> bool:
        return name in self._blocks

    def names(self) -> list[str]:
        """Every block name, in file order."""
        return list(self._blocks)


@cache
def queries(schema: str, filename: str = "queries.sql") -> Queries:
    """The (cached) blocks of ``filename`` for ``schema``."""
    return Queries(schema, filename)


def splice(template: str, **clauses: str) -> str:
    """Fill a template's `SLOTS` with clauses built by this module."""
    return sqlfiles.splice(template, SLOTS, **clauses)


#: An anchored PostgreSQL regular expression matching what `fnmatch.fnmatchcase` does.
glob_to_regex = globs.postgres_regex


def routing_clause(routing: Routing, column_prefix: str = "") -> tuple[str, Params]:
    """A boolean SQL expression matching `Routing` (named ``%(r_...)s`` parameters)."""
    p = column_prefix
    parts: list[str] = []
    params: Params = {}
    if routing.queues is not None:
        exact = [q for q in routing.queues if not globs.is_pattern(q)]
        regexes = [globs.postgres_regex(q) for q in routing.queues if globs.is_pattern(q)]
        tests = []
        if exact:
            params["r_queues"] = exact
            tests.append(f"{p}queue = ANY(%(r_queues)s::text[])")
        if regexes:
            params["r_globs"] = regexes
            tests.append(f"{p}queue ~ ANY(%(r_globs)s::text[])")
        parts.append("(" + " OR ".join(tests) + ")" if tests else "false")
    if routing.priorities is not None:
        params["r_priorities"] = [int(x) for x in routing.priorities]
        parts.append(f"{p}priority = ANY(%(r_priorities)s::int2[])")
    if routing.tasks is not None:
        params["r_tasks"] = list(routing.tasks)
        parts.append(f"{p}task = ANY(%(r_tasks)s::text[])")
    return (" AND ".join(parts) or "true"), params


def filter_clause(q: JobQuery) -> tuple[str, Params]:
    """A boolean SQL expression matching a `JobQuery`'s filters, and its parameters."""
    parts: list[str] = []
    params: Params = {}
    if q.states is not None:
        params["f_states"] = [State(s).value for s in q.states]
        parts.append("state = ANY(%(f_states)s::text[])")
    if q.queue is not None:
        params["f_queue"] = q.queue
        parts.append("queue = %(f_queue)s")
    if q.task is not None:
        params["f_task"] = q.task
        parts.append("task = %(f_task)s")
    return (" AND ".join(parts) or "true"), params
