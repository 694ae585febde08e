"""The sentry channel: events reach a fake Sentry (a local HTTP server) through sentry-sdk."""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterator

import pytest
from tests.unit.conftest import wait_until
from tests.unit.logs_support import http_server

from conveyor.errors import ConfigError
from conveyor.logs import configure_logging, log, report, reset_logging
from conveyor.settings import load_settings


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    level = root.level
    yield
    reset_logging()
    root.setLevel(level)


@pytest.fixture
def sentry_client_reset() -> Iterator[None]:
    sentry_sdk = pytest.importorskip("sentry_sdk", reason="needs conveyor[sentry]")
    yield
    sentry_sdk.get_client().close(timeout=2)
    sentry_sdk.get_global_scope().set_client(None)


@pytest.mark.usefixtures("sentry_client_reset")
def test_reported_exceptions_and_errors_reach_sentry() -> None:
    import sentry_sdk

    with http_server() as server:
        # Given the sentry channel with a DSN pointing at the local server
        dsn = server.url.replace("http://", "http://publickey@") + "/42"
        configure_logging(load_settings(log_channel="sentry", sentry_dsn=dsn))
        # When an exception is reported and an error and an info are logged
        try:
            raise ValueError("bad input")
        except ValueError as exc:
            report(exc, order=7)
        log.error("card declined")
        log.info("below LOG_SENTRY_LEVEL")
        sentry_sdk.flush(timeout=5)
        # Then two events, not three, arrive at the project's envelope endpoint
        wait_until(lambda: len(server.requests) >= 2, timeout=5)
        assert len(server.requests) == 2
        assert all(path == "/api/42/envelope/" for path, _ in server.requests)
        bodies = b"".join(body for _, body in server.requests)
        assert b"bad input" in bodies
        assert b"ValueError" in bodies
        assert b"card declined" in bodies


def test_a_missing_sentry_sdk_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "sentry_sdk", None)  # as if not installed
    with pytest.raises(ConfigError, match=r"pip install 'conveyor\[sentry\]'"):
        configure_logging(
            load_settings(log_channel="sentry", sentry_dsn="http://key@127.0.0.1:9/1")
        )
