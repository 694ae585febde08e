"""Which variables Conveyor reads, and a "did you mean" for the ones it does not.

Every setting has two names: ``CONVEYOR_<FIELD>`` (always Conveyor's, and it wins) and the
seeds' unprefixed ``<FIELD>`` (``LOG_LEVEL``, ``WORKER_CONCURRENCY``), which other programs
may share. The backend URL is only ``CONVEYOR_URL``.

A variable that looks like a typo of a known name is reported, with the name it is close
to. Unprefixed names are checked only when they start like a Conveyor setting (``WORKER_``,
``LOG_``...) and are very close to one, so another program's ``LOG_FILE`` never is.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable

PREFIX = "CONVEYOR_"
#: The only variable that chooses the job store.
URL_VARIABLE = "CONVEYOR_URL"

#: ``conveyor run``'s pool keys (``WORKER_<KEY>``, ``<POOL>_WORKER_<KEY>``).
POOL_KEYS = (
    "processes",
    "concurrency",
    "queues",
    "priorities",
    "job_types",
    "max_jobs",
    "memory_limit",
    "max_time",
    "timeout",
    "sleep",
    "tries",
    "grace_period",
    "queues_ordered",
    "backoff",
)
#: Read by the supervisor (``conveyor run``, ``conveyor export``), not by `Settings`.
SUPERVISOR_NAMES = ("QUEUE_MULTI_WORKER", "QUEUE_DEFAULT_WORKER", "WORKER_PROCESSES")
#: ``CONVEYOR_*`` variables read elsewhere: CLI options and the worker's companions. A
#: new one must be listed here, or it is reported as a possible typo.
OTHER_CONVEYOR_NAMES = (
    "CONVEYOR_APP",
    "CONVEYOR_POOL",
    "CONVEYOR_RUN_DIR",
    "CONVEYOR_METRICS_PORT_DIR",
    "CONVEYOR_DASHBOARD_TOKEN",
    "CONVEYOR_DASHBOARD_PASSWORD",
    "CONVEYOR_DASHBOARD_SECRET",
    "CONVEYOR_DASHBOARD_SESSION_HOURS",
    "CONVEYOR_DASHBOARD_TRUSTED_PROXIES",
    "CONVEYOR_DASHBOARD_SECURE_COOKIES",
    "CONVEYOR_DEBUG_TOKEN",
)
#: Prefixes of variables that are someone else's business (the test suite's servers).
IGNORED_PREFIXES = ("CONVEYOR_TEST_",)
#: Unprefixed names are checked for typos only when they start like a setting.
SEED_PREFIXES = ("WORKER_", "QUEUE_", "JOB_", "SCHEDULER_", "LOG_", "ALERT_", "SUPERVISOR_")

_POOL_VARIABLE = re.compile(
    r"^(CONVEYOR_)?[A-Z][A-Z0-9_]*?_WORKER_(" + "|".join(k.upper() for k in POOL_KEYS) + r")$"
)


def names_of(field: str) -> tuple[str, ...]:
    """The variables of a `Settings` field, strongest first."""
    if field == "conveyor_url":
        return (URL_VARIABLE,)
    return (PREFIX + field.upper(), field.upper())


def seed_names(fields: Iterable[str]) -> frozenset[str]:
    """Every unprefixed name Conveyor reads: the fields' and the supervisor's."""
    own = {f.upper() for f in fields if f != "conveyor_url"}
    return frozenset(own | {f"WORKER_{k.upper()}" for k in POOL_KEYS} | set(SUPERVISOR_NAMES))


def known_names(fields: Iterable[str]) -> frozenset[str]:
    """Every variable name Conveyor reads, prefixed or not."""
    seeds = seed_names(fields)
    return frozenset(seeds | {PREFIX + s for s in seeds} | {URL_VARIABLE, *OTHER_CONVEYOR_NAMES})


def typos(present: Iterable[str], fields: Iterable[str]) -> list[tuple[str, str]]:
    """``(variable, the known name it is probably a typo of)`` for each of ``present``."""
    known = known_names(fields)
    prefixed = sorted(n for n in known if n.startswith(PREFIX))
    seeds = sorted(n for n in known if not n.startswith(PREFIX))
    found = []
    for raw in present:
        name = raw.upper()
        if name in known or name.startswith(IGNORED_PREFIXES) or _POOL_VARIABLE.match(name):
            continue
        if name.startswith(PREFIX):
            match = difflib.get_close_matches(name, prefixed, n=1, cutoff=0.8)
        elif name.startswith(SEED_PREFIXES):
            match = difflib.get_close_matches(name, seeds, n=1, cutoff=0.9)
        else:
            continue
        if match:
            found.append((raw, match[0]))
    return found
