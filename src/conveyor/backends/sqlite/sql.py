"""The SQL the SQLite backend runs: named blocks loaded from the `.sql` files beside this one.

Table and index names live in `NAMES`, the one place they are spelled. Clauses that depend on
a worker's routing or a query's filters are built here from named parameters and spliced
into the slots the templates leave for them; values always travel as parameters.
"""

from __future__ import annotations

import re
import sqlite3
from functools import cache
from typing import Any

from conveyor.backends import globs, sqlfiles
from conveyor.backends.sqlfiles import load_blocks
from conveyor.job import JobQuery, Routing, State

#: Every table and index the backend owns. Prefixed, so the file can hold an app's tables too.
NAMES: dict[str, str] = {
    "jobs": "conveyor_jobs",
    "counters": "conveyor_counters",
    "workers": "conveyor_workers",
    "meta": "conveyor_meta",
    "leases": "conveyor_leases",
    "schedules": "conveyor_schedules",
    "rate_starts": "conveyor_rate_starts",
    "slots": "conveyor_slots",
    "paused": "conveyor_paused",
    "history": "conveyor_history",
    "jobs_claim": "conveyor_jobs_claim",
    "jobs_due": "conveyor_jobs_due",
    "jobs_lease": "conveyor_jobs_lease",
    "jobs_unique": "conveyor_jobs_unique",
    "rate_starts_key": "conveyor_rate_starts_key",
}

#: Slots a template may leave for a clause built at run time.
SLOTS = frozenset({"routing", "filters", "states"})

_PLACEHOLDER = re.compile(r"\{(\w+)\}")

Params = dict[str, Any]


def _fill_names(text: str, source: str) -> str:
    def sub(match: re.Match[str]) -> str:
        key = match.group(1)
        if key in NAMES:
            return NAMES[key]
        if key in SLOTS:
            return match.group(0)
        raise ValueError(f"{source}: unknown placeholder {{{key}}}")

    return _PLACEHOLDER.sub(sub, text)


@cache
def load(filename: str) -> dict[str, str]:
    """The named blocks of one `.sql` file shipped with this package, table names filled in."""
    blocks = load_blocks(__package__ or __name__, filename)
    return {name: _fill_names(body, filename) for name, body in blocks.items()}


def query(name: str) -> str:
    """One named block of `queries.sql`."""
    return load("queries.sql")[name]


def statements(script: str) -> list[str]:
    """Split a block into single statements (``executescript`` would commit on its own)."""
    out: list[str] = []
    current: list[str] = []
    for line in script.splitlines(keepends=True):
        current.append(line)
        chunk = "".join(current)
        if sqlite3.complete_statement(chunk):
            out.append(chunk.strip())
            current = []
    rest = "".join(current).strip()
    if rest and not all(ln.lstrip().startswith("--") for ln in rest.splitlines() if ln.strip()):
        raise ValueError(f"incomplete SQL statement: {rest[:80]!r}")
    return out


def _in_list(column: str, prefix: str, values: tuple[Any, ...], params: Params) -> str:
    if not values:
        return "0"  # an empty selection matches nothing, as in Routing.matches
    names = []
    for i, value in enumerate(values):
        params[f"{prefix}{i}"] = value
        names.append(f":{prefix}{i}")
    return f"{column} IN ({', '.join(names)})"


def routing_clause(routing: Routing) -> tuple[str, Params]:
    """A boolean SQL expression matching `Routing`, and its parameters."""
    parts: list[str] = []
    params: Params = {}
    if routing.queues is not None:
        tests = []
        for i, queue in enumerate(routing.queues):
            pattern = globs.is_pattern(queue)
            params[f"q{i}"] = globs.sqlite_glob(queue) if pattern else queue
            tests.append(f"queue {'GLOB' if pattern else '='} :q{i}")
        parts.append("(" + " OR ".join(tests) + ")" if tests else "0")
    if routing.priorities is not None:
        parts.append(_in_list("priority", "p", tuple(int(p) for p in routing.priorities), params))
    if routing.tasks is not None:
        parts.append(_in_list("task", "t", routing.tasks, params))
    return (" AND ".join(parts) or "1"), params


def filter_clause(q: JobQuery) -> tuple[str, Params]:
    """A boolean SQL expression matching a `JobQuery`'s filters, and its parameters."""
    parts: list[str] = []
    params: Params = {}
    if q.states is not None:
        parts.append(_in_list("state", "s", tuple(State(s).value for s in q.states), params))
    if q.queue is not None:
        parts.append("queue = :queue")
        params["queue"] = q.queue
    if q.task is not None:
        parts.append("task = :task")
        params["task"] = q.task
    return (" AND ".join(parts) or "1"), params


def states_list(states: tuple[State, ...], params: Params) -> str:
    """Named parameters for an ``IN (...)`` list of states, added to ``params``."""
    for i, state in enumerate(states):
        params[f"s{i}"] = state.value
    return ", ".join(f":s{i}" for i in range(len(states)))


def splice(template: str, **clauses: str) -> str:
    """Fill a template's `SLOTS` with clauses built by this module."""
    return sqlfiles.splice(template, SLOTS, **clauses)
