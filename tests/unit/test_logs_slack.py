"""The slack channel, against a real HTTP server on 127.0.0.1."""

from __future__ import annotations

import json
import logging
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.unit.conftest import wait_until
from tests.unit.logs_support import http_server

from conveyor.logs import configure_logging, log, reset_logging
from conveyor.logs.slack import SlackHandler
from conveyor.settings import load_settings


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    level = root.level
    yield
    reset_logging()
    root.setLevel(level)


def lines(requests: list[tuple[str, bytes]]) -> list[str]:
    return [line for _, body in requests for line in json.loads(body)["text"].splitlines()]


def test_lines_are_batched_into_few_messages() -> None:
    with http_server() as server:
        # Given the slack channel at LOG_SLACK_LEVEL=warning
        configure_logging(
            load_settings(
                log_channel="slack",
                log_slack_webhook_url=server.url + "/hook",
                log_slack_username="ci-bot",
                log_slack_emoji=":fire:",
                log_slack_level="warning",
            )
        )
        # When five warnings and an info are logged in a burst
        for n in range(5):
            log.warning("disk almost full", n=n)
        log.info("below the slack level")
        # Then the five lines arrive, in fewer messages than lines
        wait_until(lambda: len(lines(server.requests)) == 5, timeout=5)
        assert len(server.requests) < 5
        path, body = server.requests[0]
        payload = json.loads(body)
        assert path == "/hook"
        assert payload["username"] == "ci-bot"
        assert payload["icon_emoji"] == ":fire:"
        assert "disk almost full n=0" in payload["text"]
        assert not any("below" in line for line in lines(server.requests))


def test_a_slow_webhook_never_blocks_the_caller(capsys: pytest.CaptureFixture[str]) -> None:
    with http_server(open_gate=False) as server:  # answers nothing until the test ends
        # Given a slack handler with a short timeout and a small queue
        url = server.url + "/hook/T0/B0/SECRET"
        handler = SlackHandler(url, timeout=0.2, batch_seconds=0.01, max_queue=5)
        logger = logging.getLogger("test.slack.slow")
        logger.propagate = False
        logger.addHandler(handler)
        try:
            # When far more lines are logged than the queue holds
            started = time.monotonic()
            for n in range(200):
                logger.error("line %d", n)
            elapsed = time.monotonic() - started
            # Then the caller was not held by the server (which answers nothing), the
            # overflow was dropped and counted, and the timeout is reported once, sans URL
            assert elapsed < 2.0
            assert handler.dropped > 0
            wait_until(lambda: handler.failures >= 1, timeout=5)
            logger.error("after the first failure")
            wait_until(lambda: handler.failures >= 2, timeout=5)
        finally:
            logger.removeHandler(handler)
            handler.close(timeout=1)
    err = capsys.readouterr().err
    assert err.count("slack log channel could not post") == 1
    assert "SECRET" not in err


def test_an_unreachable_webhook_does_not_stop_the_rest_of_a_stack(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given a stack of single and slack, with nobody listening at the webhook's port
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    configure_logging(
        load_settings(
            log_channel="stack",
            log_stack="single,slack",
            log_path=str(tmp_path / "c.log"),
            log_slack_webhook_url=f"http://127.0.0.1:{port}/hook/SECRET",
        )
    )
    # When an error is logged
    log.error("payment failed", order=7)
    # Then the file has it, and the failure is on stderr once, without the URL
    wait_until(_failed, timeout=5)
    reset_logging()
    assert "payment failed order=7" in (tmp_path / "c.log").read_text()
    err = capsys.readouterr().err
    assert err.count("slack log channel could not post") == 1
    assert "SECRET" not in err


def _failed() -> bool:
    from conveyor.logs import state

    current = state._current
    if current is None:
        return False
    handler = current._built.get("slack")
    return isinstance(handler, SlackHandler) and handler.failures > 0
