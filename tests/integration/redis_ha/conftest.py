"""Servers for the high-availability tests, each started once per test session and
stopped by PID at its end: a Sentinel group (a primary, a replica, three sentinels), a TLS
server with a throwaway CA, a TLS Sentinel group, and a server with ACL users. Each skips
locally when its tool is missing and fails when ``CI`` is set."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import pytest
from tests.integration.redis_server import RedisServer

from conveyor.backends.redis.acl import acl_line

from .sentinel_group import SentinelGroup

if TYPE_CHECKING:
    from .tls_sentinel import TlsSentinelGroup
    from .tls_support import TlsServer


@pytest.fixture(scope="session")
def sentinel_group(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SentinelGroup]:
    """The session's Sentinel group, in sync (healed) before each use."""
    group = SentinelGroup(tmp_path_factory.mktemp("sentinel"))
    try:
        group.start()
        yield group
    finally:
        group.stop()


@pytest.fixture
def sentinels(sentinel_group: SentinelGroup) -> SentinelGroup:
    """The Sentinel group with a primary and an online replica (a killed server is
    restarted first)."""
    sentinel_group.heal()
    return sentinel_group


@pytest.fixture(scope="session")
def tls_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TlsServer]:
    """A TLS-only redis-server with a throwaway CA, asking for client certificates."""
    tls = _tls_support()
    base = tmp_path_factory.mktemp("tls")
    server = tls.TlsServer(base / "server", tls.make_certificates(base / "certs"))
    try:
        server.start()
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def tls_sentinels(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TlsSentinelGroup]:
    """A TLS-only primary, replica and sentinel (``rediss+sentinel://``), in sync before
    each use."""
    _tls_support()
    from .tls_sentinel import TlsSentinelGroup
    from .tls_support import make_certificates

    base = tmp_path_factory.mktemp("tls-sentinel")
    group = TlsSentinelGroup(base, make_certificates(base / "certs"))
    try:
        group.start()
        yield group
    finally:
        group.stop()


@pytest.fixture(scope="session")
def acl_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """A redis-server with ACL users: ``conveyor`` (the documented ACL line, store
    ``conveyor``), ``anykey`` (the same commands on every key), and ``nohset`` /
    ``noevalsha`` (one command fewer each). Every password is ``pw``."""
    server = RedisServer(tmp_path_factory.mktemp("acl"))
    server.start()
    try:
        with server.client() as c:
            for user, line in acl_users().items():
                c.execute_command(*line.split())
                assert user in c.acl_users()
        yield server
    finally:
        server.stop()


def acl_users() -> dict[str, str]:
    """User name -> its ACL SETUSER line."""
    line = acl_line(login="pw")
    return {
        "conveyor": line,
        "anykey": acl_line("anykey", login="pw").replace("~{conveyor}:*", "~*"),
        "nohset": acl_line("nohset", login="pw").replace(" +hset", ""),
        "noevalsha": acl_line("noevalsha", login="pw").replace(" +evalsha", ""),
    }


def _tls_support() -> Any:
    """The TLS helpers, which need the ``cryptography`` package (in the ``test`` extra):
    skipped locally without it, a failure under CI."""
    try:
        from . import tls_support
    except ImportError as exc:
        message = f"the TLS tests need the cryptography package ({exc}): pip install -e .[test]"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return tls_support
