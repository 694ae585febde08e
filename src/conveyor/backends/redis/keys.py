"""Key names and routing in the form the Lua scripts read.

Every key of one store starts with ``{prefix}:``, so all of them share one Redis Cluster
hash tag: scripts that touch several (a claim across queues, a unique key and a job) stay
atomic on a cluster too. See the package docstring for the whole layout.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache

from conveyor.backends.globs import LUA_ANY_CHAR, LUA_NO_CHAR, lua_pattern

# The URL's parts moved to `urls`; these names stay importable from here.
from conveyor.backends.redis.urls import DEFAULT_PREFIX, OWN_OPTIONS, Target, parse_url
from conveyor.job import Routing, State

#: Markers the translated patterns use, expanded by ``compile`` in lib.lua (see `globs`).
ANY_CHAR = LUA_ANY_CHAR
NO_CHAR = LUA_NO_CHAR


@dataclass(frozen=True, slots=True)
class Keys:
    """The fixed keys of one store; per-job and per-lane keys are built in Lua from `base`."""

    prefix: str

    @property
    def base(self) -> str:
        """What every key starts with: the hash tag plus a colon."""
        return "{" + self.prefix + "}:"

    def __getattr__(self, name: str) -> str:
        # Only the names in `NAMES` exist; anything else is a typo worth an AttributeError.
        if name in NAMES:
            return self.base + NAMES[name]
        raise AttributeError(name)

    def job(self, job_id: str) -> str:
        """The hash holding one job."""
        return f"{self.base}job:{job_id}"

    def wake(self, waiter: str) -> str:
        """The list a parked worker blocks on."""
        return f"{self.base}wake:{waiter}"

    def done(self, state: State) -> str:
        """The retention index (by finished_at) of one final state."""
        return f"{self.base}done:{state.value}"

    def rate(self, key: str) -> str:
        """The sliding window of one rate-limit key (start times)."""
        return f"{self.base}rate:{key}"

    def slots(self, key: str) -> str:
        """The concurrency slots of one limit key (holder -> expiry)."""
        return f"{self.base}slots:{key}"


__all__ = [
    "ANY_CHAR",
    "DEFAULT_PREFIX",
    "NAMES",
    "NO_CHAR",
    "OWN_OPTIONS",
    "Keys",
    "Target",
    "parse_url",
    "routing_json",
]

#: Attribute name -> key suffix, for the fixed keys.
NAMES = {
    "all": "all",  # the job index of a store made before its buckets (query.lua)
    "buckets": "buckets",
    "seq": "seq",
    "lanes": "lanes",
    "scheduled": "scheduled",
    "leases": "leases",
    "unique": "unique",
    "counts": "counts",
    "counters": "counters",
    "waiters": "waiters",
    "workers": "workers",
    "workers_expiry": "workers:expiry",
    "locks": "locks",
    "schedules": "schedules",
    "paused": "paused",
    "history": "history",
}


# -- routing -------------------------------------------------------------------------------
@lru_cache(maxsize=256)
def routing_json(routing: Routing) -> str:
    """The routing as the scripts read it: absent lists match everything.

    Queue patterns become Lua patterns (`globs.lua_pattern`); a set holding a non-ASCII
    character raises `ConfigError`.
    """
    spec: dict[str, list[str] | list[int]] = {}
    if routing.queues is not None:
        spec["q"] = [lua_pattern(q) for q in routing.queues]
    if routing.priorities is not None:
        spec["p"] = [int(p) for p in routing.priorities]
    if routing.tasks is not None:
        spec["t"] = list(routing.tasks)
    # cjson reads [] as an empty table: "match nothing", as an empty tuple means.
    return json.dumps(spec, separators=(",", ":"))
