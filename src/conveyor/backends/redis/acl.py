"""Redis ACL users: the commands a store needs, as a line to paste, and a clear error
naming the command when a user lacks one.

A command a script runs is checked by Redis when the script runs it, and the error
(``The user executing the script can't run this command``) does not say which one; so
`explain_script_denial` asks Redis (``redis.acl_check_cmd``, Redis 7) which of the
failed script's commands the user may not run.
"""

from __future__ import annotations

import re
from functools import cache
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlsplit

from redis.exceptions import RedisError

from conveyor.backends.redis.scripts import NAMES, script
from conveyor.errors import BackendError

if TYPE_CHECKING:
    from redis import Redis
    from redis.asyncio import Redis as AsyncRedis

    from conveyor.backends.redis.urls import Target

#: Commands Conveyor sends itself, outside its scripts (``script|load`` is SCRIPT LOAD).
#: CONFIG GET (the persistence check) and INFO (the topology) are optional: without them
#: those checks are skipped.
DIRECT = (
    "evalsha",
    "script|load",
    "ping",
    "hgetall",
    "hmget",
    "hdel",
    "smembers",
    "type",
    "blpop",
    "lpush",
    "expire",
    "del",
    "wait",
)
OPTIONAL = ("config|get", "info")

_CALL = re.compile(r"redis\.p?call\(\s*['\"]([A-Za-z]+)['\"]")
_DENIED_IN_SCRIPT = "can't run this command or subcommand"

# One Lua script that returns the names among ARGV the running user may not run on KEYS[1].
_CHECK = (
    "local out = {} for _, c in ipairs(ARGV) do "
    "if not redis.acl_check_cmd(c, KEYS[1]) then table.insert(out, c) end end return out"
)


@cache
def script_commands(name: str) -> tuple[str, ...]:
    """The commands script ``name`` may run (read from its source), lower case, sorted."""
    return tuple(sorted({c.lower() for c in _CALL.findall(script(name).source)}))


@cache
def commands() -> tuple[str, ...]:
    """Every command a store needs: `DIRECT` and those of every script."""
    found = set(DIRECT)
    for name in NAMES:
        found.update(script_commands(name))
    return tuple(sorted(found))


def acl_line(user: str = "conveyor", prefix: str = "conveyor", *, login: str = "PASSWORD") -> str:
    """``ACL SETUSER`` for a user that may run one store (``prefix``) and nothing else,
    logging in with the password ``login``."""
    grants = " ".join(f"+{c}" for c in (*commands(), *OPTIONAL))
    keys = f"~{{{prefix}}}:*"
    return f"ACL SETUSER {user} on >{login} resetkeys {keys} resetchannels -@all {grants}"


def user_of(target: Target) -> str:
    """The ACL user the URL logs in as (``default`` when it names none)."""
    name = urlsplit(target.redis_url).username
    return unquote(name) if name else "default"


def denied_in_script(exc: BaseException) -> bool:
    """Whether ``exc`` is Redis refusing a command a script ran to the ACL user."""
    return _DENIED_IN_SCRIPT in str(exc)


def denial(target: Target, denied: list[str], detail: str) -> BackendError:
    """The error for an ACL user lacking the ``denied`` commands: names them and how to
    grant them."""
    user = user_of(target)
    names = ", ".join(repr(c) for c in denied)
    grants = " ".join(f"+{c}" for c in denied)
    return BackendError(
        f"Redis at {target.display} does not let the ACL user {user!r} run the "
        f"command{'s' * (len(denied) > 1)} {names} ({detail}). Grant "
        f"{'them' if len(denied) > 1 else 'it'} (ACL SETUSER {user} {grants}) or create "
        "the user with the ACL line in docs/redis.md."
    )


async def explain_script_denial(
    client: AsyncRedis, target: Target, probe_key: str, name: str, exc: BaseException
) -> BackendError:
    """The error for script ``name`` refused a command: names the command(s) the user
    lacks, found with ``redis.acl_check_cmd`` (or lists the script's commands when even
    that cannot run)."""
    wanted = script_commands(name)
    try:
        # SCRIPT LOAD and EVALSHA, which the user may run, rather than EVAL.
        sha = await client.script_load(_CHECK)
        raw = await client.evalsha(sha, 1, probe_key, *wanted)
    except RedisError:
        raw = None
    return _script_denial(target, name, exc, raw)


def explain_script_denial_sync(
    client: Redis, target: Target, probe_key: str, name: str, exc: BaseException
) -> BackendError:
    """`explain_script_denial` on the sync client (``enqueue`` from sync code)."""
    wanted = script_commands(name)
    try:
        sha = client.script_load(_CHECK)
        raw = client.evalsha(sha, 1, probe_key, *wanted)
    except RedisError:
        raw = None
    return _script_denial(target, name, exc, raw)


def _script_denial(target: Target, name: str, exc: BaseException, raw: Any) -> BackendError:
    """The error naming the commands in ``raw`` (the check script's reply), or every
    command of the script when the check could not run."""
    denied = [c.decode() if isinstance(c, bytes) else str(c) for c in raw or ()]
    detail = f"the {name}.lua script needs it; Redis said: {str(exc).split(' script:')[0]}"
    if denied:
        return denial(target, denied, detail)
    return BackendError(
        f"Redis at {target.display} does not let the ACL user {user_of(target)!r} run one "
        f"of the commands of the {name}.lua script ({', '.join(script_commands(name))}). "
        "Grant them or create the user with the ACL line in docs/redis.md."
    )
