"""Script calls packed by hand: one EVALSHA in RESP, sent on a pooled connection.

Every state change is one script call, so the client's cost per call is paid per job.
redis-py encodes each argument through several layers (its encoder, type checks, the
observability hooks of its ``execute_command``); here the fixed head of a call (command,
SHA, key count, keys) is packed once per script and key set, and each call adds only its
arguments. The connection handling is redis-py's own (its pool, health checks, timeouts,
and disconnecting on any error, a timeout or a cancellation included, so a reply left
unread is never read by the next call); like the clients `clients.py` builds, a call
that meets a dropped connection is sent once more on a fresh one (at least once, as
redis-py's retry does: a script whose reply was lost may have run).

Only plain clients take this path (`packable`), Sentinel-managed ones included (a demoted
primary's READONLY is a dropped connection there, so the call is sent once more, to the
primary the sentinels name); any other (a Cluster client, a single-connection client)
goes through redis-py's ``evalsha``. A script the server does
not know (a restart, SCRIPT FLUSH) is loaded and the call repeated by `scripts.run`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from functools import lru_cache
from typing import Any

from redis import Redis
from redis.asyncio import Redis as AsyncRedis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import DataError, ResponseError


@lru_cache(maxsize=512)
def _head(sha: str, keys: tuple[str, ...]) -> tuple[int, bytes]:
    """How many parts the fixed head has, and its packed bytes."""
    parts = [b"EVALSHA", sha.encode(), b"%d" % len(keys), *(k.encode() for k in keys)]
    return len(parts), b"".join(b"$%d\r\n%b\r\n" % (len(p), p) for p in parts)


def _encode(value: Any) -> bytes:
    """One argument as redis-py's encoder sends it (UTF-8 text, numbers as text)."""
    kind = type(value)
    if kind is bytes:
        return value  # type: ignore[no-any-return]
    if kind is str:
        return value.encode()  # type: ignore[no-any-return]
    if kind is int:
        return b"%d" % value
    if kind is float:
        return repr(value).encode()
    if isinstance(value, memoryview | bytearray):
        return bytes(value)
    # Subclasses (a StrEnum, an IntEnum) as their value; bool is refused, as redis-py does.
    if isinstance(value, str):
        return value.encode()
    if isinstance(value, int) and not isinstance(value, bool):
        return b"%d" % value
    if isinstance(value, float):
        return repr(float(value)).encode()
    raise DataError(
        f"invalid input of type {kind.__name__!r}: convert to bytes, string, int or float first"
    )


def pack(sha: str, keys: Sequence[str], args: Sequence[Any]) -> bytes:
    """``EVALSHA sha len(keys) *keys *args`` in RESP."""
    count, head = _head(sha, tuple(keys))
    out = [b"*%d\r\n" % (count + len(args)), head]
    append = out.append
    for arg in args:
        # Text and bytes are nearly every argument: no call for them.
        kind = type(arg)
        data = arg.encode() if kind is str else arg if kind is bytes else _encode(arg)
        append(b"$%d\r\n%b\r\n" % (len(data), data))
    return b"".join(out)


def packable(client: Redis | AsyncRedis) -> bool:
    """Whether ``client`` is a plain client whose pool hands out connections: redis-py's
    own, or a subclass that sends commands as it does (the Sentinel clients of
    `clients.py`, whose pool asks the sentinels where the primary is)."""
    kind = type(client)
    base = (
        Redis if issubclass(kind, Redis) else AsyncRedis if issubclass(kind, AsyncRedis) else None
    )
    return (
        base is not None
        and getattr(kind, "execute_command", None) is getattr(base, "execute_command", None)
        # The sync client names the flag with an underscore, the asyncio one without.
        and not getattr(client, "single_connection_client", False)
        and not getattr(client, "_single_connection_client", False)
        and getattr(client, "connection", None) is None
    )


def call_sync(client: Redis, packed: bytes) -> Any:
    """Send a packed call and read its reply (an error reply is raised, as redis-py does)."""
    [reply] = call_many_sync(client, (packed,))
    if isinstance(reply, ResponseError):
        raise reply
    return reply


def call_many_sync(client: Redis, calls: Iterable[bytes]) -> list[Any]:
    """Send packed calls back to back on one connection, then read their replies, in
    order: a pipeline, where the server runs the first call while the next is packed
    (``calls`` may be a generator). An error reply is returned in its call's place, not
    raised, so the caller can deal with each; a dropped connection sends them all once
    more on a fresh one, as `call_sync` does (at least once: a call may have run)."""
    pool = client.connection_pool
    pending = iter(calls)  # one pass: a retry sends what was sent, then the rest
    sent: list[bytes] = []
    for attempt in (1, 2):
        conn = pool.get_connection()
        try:
            if attempt == 1:
                for packed in pending:
                    sent.append(packed)
                    conn.send_packed_command([packed])  # type: ignore[no-untyped-call]
            else:
                sent.extend(pending)  # what was not packed before the drop
                conn.send_packed_command(sent)  # type: ignore[no-untyped-call]
            return [_reply(conn) for _ in sent]
        except RedisConnectionError:
            conn.disconnect()  # type: ignore[no-untyped-call]
            if attempt == 2:
                raise
        except BaseException:
            # Replies may be left unread: the next user of this connection must not get them.
            conn.disconnect()  # type: ignore[no-untyped-call]
            raise
        finally:
            pool.release(conn)
    raise AssertionError("unreachable")  # pragma: no cover


def _reply(conn: Any) -> Any:
    try:
        return conn.read_response()
    except ResponseError as exc:
        return exc


async def call(client: AsyncRedis, packed: bytes) -> Any:
    """`call_sync` for the asyncio client. redis-py closes the connection on any error or
    cancellation while the call is on it, so no reply is ever read by the next call."""
    pool = client.connection_pool
    for attempt in (1, 2):
        conn = await pool.get_connection()  # type: ignore[no-untyped-call]
        try:
            await conn.send_packed_command([packed])
            return await conn.read_response()
        except RedisConnectionError:
            if attempt == 2:
                raise
        finally:
            await pool.release(conn)
    raise AssertionError("unreachable")  # pragma: no cover
