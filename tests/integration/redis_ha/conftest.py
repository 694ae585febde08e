"""Servers for the high-availability tests, each started once per test session and
stopped by PID at its end: a Sentinel group (a primary, a replica, three sentinels), a TLS
server with a throwaway CA, and a server with ACL users. Each skips locally when its tool
is missing and fails when ``CI`` is set."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from .sentinel_group import SentinelGroup


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
