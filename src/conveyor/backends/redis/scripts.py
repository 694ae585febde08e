"""The Lua scripts: one `.lua` file per operation, each prefixed with ``lib.lua`` unless
it is in `STANDALONE` (hot scripts that define only the few helpers they use, so a call
does not pay for defining every helper). A standalone script takes a helper it needs from
``lib.lua`` by name: a line ``-- include NAME`` becomes the lines between ``-- section
NAME`` and ``-- end NAME`` there, so that code is written once. Helpers only a few scripts
need live in a file of their own, which those scripts take whole with a line ``-- include
FILE.lua`` (``attempts.lua``, the attempt log of fail.lua and recover.lua), so the other
scripts, claim and complete among them, never define them.

Scripts run by EVALSHA; a server that does not know one yet (first use, or after a
restart, since Redis does not persist its script cache) gets it with SCRIPT LOAD and the
call is repeated once.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from importlib.resources import files
from typing import Any

from redis import Redis
from redis.asyncio import Redis as AsyncRedis
from redis.exceptions import NoScriptError

from conveyor.backends.redis import wire

NAMES = (
    "enqueue",
    "claim",
    "extend",
    "complete",
    "fail",
    "release",
    "recover",
    "cancel",
    "retry_dead",
    "purge",
    "park",
    "stats",
    "query",
    "workers",
    "lease",
    "tick",
    "defer",
    "rate",
    "slot",
    "oldest",
    "history",
    "delete",
    "pause",
    "quarantine",
    "progress",
)

#: Scripts that go on with another script's body: ``tick`` records a schedule tick, then
#: enqueues with exactly enqueue.lua's code.
CONTINUES_WITH = {"tick": "enqueue"}

#: Scripts loaded without ``lib.lua``: they read ``P`` and ``now`` from ARGV themselves.
STANDALONE = frozenset({"enqueue"})


@dataclass(frozen=True, slots=True)
class Script:
    """A loaded script's full source and its SHA1."""

    name: str
    source: str
    sha: str


def _read(filename: str) -> str:
    return files(__package__ or __name__).joinpath(filename).read_text(encoding="utf-8")


#: ``-- include NAME`` on a line of its own, indented or not (inside a block).
_INCLUDE = re.compile(r"^[ \t]*-- include (\w+)\b(?!\.lua).*$", re.MULTILINE)
_INCLUDE_FILE = re.compile(r"^-- include (\w+\.lua)$", re.MULTILINE)


def _section(name: str) -> str:
    """The lines of ``lib.lua`` between ``-- section NAME`` and ``-- end NAME``."""
    lib = _read("lib.lua")
    found = re.search(rf"^-- section {name}\b.*?\n(.*?)^-- end {name}$", lib, re.M | re.S)
    if found is None:
        raise KeyError(f"lib.lua has no section {name!r}")
    return found.group(1)


def _with_includes(source: str) -> str:
    source = _INCLUDE_FILE.sub(lambda m: f"-- {m[1]}\n{_read(m[1])}", source)
    return _INCLUDE.sub(lambda m: f"-- lib.lua section {m[1]}\n{_section(m[1])}", source)


@cache
def script(name: str) -> Script:
    """The script ``name`` (``<name>.lua`` after ``lib.lua``, unless standalone)."""
    if name not in NAMES:
        raise KeyError(name)
    body = f"-- {name}.lua\n{_with_includes(_read(name + '.lua'))}"
    source = body if name in STANDALONE else f"{_read('lib.lua')}\n{body}"
    if name in CONTINUES_WITH:
        then = CONTINUES_WITH[name]
        source += f"\n-- {then}.lua\n{_with_includes(_read(then + '.lua'))}"
    return Script(name, source, hashlib.sha1(source.encode(), usedforsecurity=False).hexdigest())


async def run(client: AsyncRedis, name: str, keys: Sequence[str], args: list[Any]) -> Any:
    """Run script ``name`` on ``client``, loading it first if the server lacks it.

    A plain client gets the call packed by hand (`wire`), which skips redis-py's
    per-argument work; any other goes through redis-py's ``evalsha``."""
    s = script(name)
    if wire.packable(client):
        packed = wire.pack(s.sha, keys, args)
        try:
            return await wire.call(client, packed)
        except NoScriptError:
            await client.script_load(s.source)
            return await wire.call(client, packed)
    try:
        return await client.evalsha(s.sha, len(keys), *keys, *args)
    except NoScriptError:
        await client.script_load(s.source)
        return await client.evalsha(s.sha, len(keys), *keys, *args)


def run_sync(client: Redis, name: str, keys: Sequence[str], args: list[Any]) -> Any:
    """`run` for the sync client."""
    s = script(name)
    if wire.packable(client):
        packed = wire.pack(s.sha, keys, args)
        try:
            return wire.call_sync(client, packed)
        except NoScriptError:
            client.script_load(s.source)
            return wire.call_sync(client, packed)
    try:
        return client.evalsha(s.sha, len(keys), *keys, *args)
    except NoScriptError:
        client.script_load(s.source)
        return client.evalsha(s.sha, len(keys), *keys, *args)


async def load_all(client: AsyncRedis) -> None:
    """Load every script in one round trip, so the first real calls need no retry."""
    async with client.pipeline(transaction=False) as pipe:
        for name in NAMES:
            pipe.script_load(script(name).source)
        await pipe.execute()
