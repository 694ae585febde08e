"""Script calls packed by hand (`conveyor.backends.redis.wire`) against a real server: the
arguments arrive as redis-py would send them, a dropped connection is retried once, and a
call cancelled mid-reply never leaves its reply for the next call to read."""

from __future__ import annotations

import asyncio
import contextlib
import enum
import hashlib
import socket
import threading
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from redis import Redis
from redis.asyncio import Redis as AsyncRedis
from redis.exceptions import DataError, NoScriptError
from redis.exceptions import TimeoutError as RedisTimeoutError

from conveyor.backends.redis import wire
from conveyor.backends.redis.clients import sentinel_async_client, sentinel_sync_client
from conveyor.backends.redis.keys import Keys, parse_url
from conveyor.backends.redis.scripts import run, run_sync, script

from .redis_server import RedisServer

ECHO = "return {KEYS[1], ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5]}"
#: Busy for about 0.3 s of server time, then answers with its argument.
SLOW = (
    "local t = redis.call('TIME') local start = t[1] * 1e6 + t[2] "
    "repeat t = redis.call('TIME') until t[1] * 1e6 + t[2] - start > 300000 "
    "return ARGV[1]"
)


def sha(source: str) -> str:
    return hashlib.sha1(source.encode(), usedforsecurity=False).hexdigest()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    # A server of its own: these tests flush its script cache and close its connections.
    with RedisServer(tmp_path_factory.mktemp("wire")).running() as s:
        yield s


@pytest.fixture
def client(server: RedisServer) -> Iterator[Redis]:
    with Redis.from_url(server.url) as c:
        c.script_load(ECHO)
        c.script_load(SLOW)
        yield c


@pytest.fixture
async def aclient(server: RedisServer, client: Redis) -> AsyncIterator[AsyncRedis]:
    c = AsyncRedis.from_url(server.url)
    try:
        yield c
    finally:
        await c.aclose()


ARGS = ["text é", b"\x00\xffbytes", 42, 0.1 + 0.2, ""]


def test_arguments_arrive_as_redis_py_sends_them(client: Redis) -> None:
    # Given the same call made by redis-py and packed by hand
    expected = client.evalsha(sha(ECHO), 1, "{w}:key", *ARGS)
    packed = wire.pack(sha(ECHO), ["{w}:key"], ARGS)
    # Then the server sees the same keys and arguments
    assert wire.packable(client)
    assert wire.call_sync(client, packed) == expected
    assert expected[3] == b"42" and expected[4] == repr(0.1 + 0.2).encode()


@pytest.mark.parametrize("protocol", [2, 3])
def test_resp3_clients_get_the_same_replies(server: RedisServer, protocol: int) -> None:
    with Redis.from_url(server.url, protocol=protocol) as c:
        c.script_load(ECHO)
        assert wire.packable(c)
        sent = [b"k", "text é".encode(), b"\x00\xffbytes", b"42", repr(0.1 + 0.2).encode(), b""]
        assert wire.call_sync(c, wire.pack(sha(ECHO), ["k"], ARGS)) == sent
        c.script_flush()
        with pytest.raises(NoScriptError):
            wire.call_sync(c, wire.pack(sha(ECHO), ["k"], ARGS))
        assert isinstance(
            run_sync(c, "stats", _stats_keys("wire-resp"), [Keys("wire-resp").base, ""]), list
        )


def test_enum_arguments_arrive_as_their_values(client: Redis) -> None:
    class Color(enum.StrEnum):
        RED = "red"

    class Size(enum.IntEnum):
        BIG = 3

    reply = wire.call_sync(client, wire.pack(sha(ECHO), ["k"], [Color.RED, Size.BIG, "", "", ""]))
    assert reply[1:3] == [b"red", b"3"]


def test_unsupported_arguments_are_refused_like_redis_py() -> None:
    for bad in (True, None, [1]):
        with pytest.raises(DataError, match="invalid input of type"):
            wire.pack(sha(ECHO), ["k"], [bad])


def test_error_replies_are_raised(client: Redis) -> None:
    with pytest.raises(NoScriptError):
        wire.call_sync(client, wire.pack("0" * 40, [], []))
    # The connection is still good for the next call.
    assert wire.call_sync(client, wire.pack(sha(ECHO), ["k"], ARGS))[1] == ARGS[0].encode()


def test_a_dropped_connection_is_retried_once(server: RedisServer, client: Redis) -> None:
    # Given a pooled connection the server has closed
    wire.call_sync(client, wire.pack(sha(ECHO), ["k"], ARGS))
    with Redis.from_url(server.url) as admin:
        name = f"wire-{id(client)}"
        client.client_setname(name)
        killed = [c["id"] for c in admin.client_list() if c.get("name") == name]
        for cid in killed:
            admin.client_kill_filter(_id=cid)
    # When a script call goes out on it, it is sent again on a fresh one
    assert wire.call_sync(client, wire.pack(sha(ECHO), ["k"], ARGS))[2] == ARGS[1]


class DropsFirstScriptReply:
    """A TCP proxy to ``port`` that closes the first connection carrying an EVALSHA after
    passing the call on, before its reply comes back (the server ran it, the client never
    hears); every other byte, and every later connection, goes through."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"redis://127.0.0.1:{self.listener.getsockname()[1]}/0"
        self.dropped = threading.Event()
        self.calls = 0
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        with contextlib.suppress(OSError):  # the listener closed: the test is over
            while True:
                down, _ = self.listener.accept()
                up = socket.create_connection(("127.0.0.1", self.port))
                cut = threading.Event()  # this connection is the one to drop
                for a, b in ((down, up), (up, down)):
                    pump = threading.Thread(target=self._pump, args=(a, b, a is down, cut))
                    pump.daemon = True
                    pump.start()

    def _pump(
        self, src: socket.socket, dst: socket.socket, from_client: bool, cut: threading.Event
    ) -> None:
        with contextlib.suppress(OSError):
            while data := src.recv(65536):
                if from_client and b"EVALSHA" in data:
                    self.calls += 1
                    if not self.dropped.is_set():
                        self.dropped.set()
                        cut.set()  # before the call goes on: its reply must not pass
                        dst.sendall(data)
                        time.sleep(0.2)  # the server runs it
                        break
                elif not from_client and cut.is_set():
                    break  # the call's reply never arrives
                dst.sendall(data)
        for sock in (src, dst):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()


def test_a_call_whose_reply_is_lost_is_sent_once_more_and_answered_once(
    server: RedisServer, client: Redis
) -> None:
    # Given a connection that drops after the server has the call, before its reply
    proxy = DropsFirstScriptReply(server.port)
    try:
        with Redis.from_url(proxy.url) as c:
            # When the call goes out, then it is sent again once on a fresh connection, and
            # its one reply is the answer
            assert wire.call_sync(c, wire.pack(sha(ECHO), ["k"], ARGS))[2] == ARGS[1]
            assert proxy.dropped.is_set() and proxy.calls == 2
    finally:
        proxy.listener.close()


async def test_a_cancelled_call_leaves_no_reply_behind(aclient: AsyncRedis) -> None:
    # Given a call cancelled while its reply is still being computed
    slow = asyncio.ensure_future(wire.call(aclient, wire.pack(sha(SLOW), [], ["first"])))
    await asyncio.sleep(0.05)
    slow.cancel()
    with pytest.raises(asyncio.CancelledError):
        await slow
    # Then the next call on the same client reads its own reply, not the first one's
    assert await wire.call(aclient, wire.pack(sha(SLOW), [], ["second"])) == b"second"


def test_a_timed_out_call_leaves_no_reply_behind(server: RedisServer, client: Redis) -> None:
    # Given a sync call that times out while its reply is still being computed
    with Redis.from_url(server.url, socket_timeout=0.1) as quick:
        with pytest.raises(RedisTimeoutError):
            wire.call_sync(quick, wire.pack(sha(SLOW), [], ["first"]))
        client.ping()  # answered once the server has run the first script and replied
        # Then the next call on the same client reads its own reply, not the first one's
        reply = wire.call_sync(quick, wire.pack(sha(ECHO), ["k"], ARGS))
        assert reply[:2] == [b"k", ARGS[0].encode()]


async def test_scripts_load_themselves_on_the_packed_path(aclient: AsyncRedis) -> None:
    # Given a server that does not know the script (loaded by SCRIPT LOAD on demand)
    await aclient.script_flush()
    prefix = "wire-test"
    reply = await run(aclient, "stats", _stats_keys(prefix), [Keys(prefix).base, ""])
    assert isinstance(reply, list)
    assert await aclient.script_exists(script("stats").sha) == [True]


def test_sync_scripts_load_themselves_on_the_packed_path(client: Redis) -> None:
    client.script_flush()
    prefix = "wire-test"
    assert isinstance(run_sync(client, "stats", _stats_keys(prefix), [Keys(prefix).base, ""]), list)


def test_clients_the_packed_path_does_not_serve(server: RedisServer) -> None:
    with Redis.from_url(server.url, single_connection_client=True) as single:
        assert not wire.packable(single)
    assert not wire.packable(AsyncRedis.from_url(server.url, single_connection_client=True))

    class Custom(Redis):
        """A client that sends commands its own way keeps redis-py's evalsha."""

        def execute_command(self, *args: Any, **options: Any) -> Any:
            return super().execute_command(*args, **options)

    with Custom.from_url(server.url) as custom:
        assert not wire.packable(custom)


def test_sentinel_clients_take_the_packed_path() -> None:
    # Their pool asks the sentinels for the primary on every new connection (the
    # failover itself: tests/integration/redis_ha/test_sentinel.py).
    target = parse_url("redis+sentinel://127.0.0.1:1/mymaster")
    assert wire.packable(sentinel_sync_client(target))
    assert wire.packable(sentinel_async_client(target))


def _stats_keys(prefix: str) -> list[str]:
    keys = Keys(prefix)
    return [keys.counts, keys.scheduled]
