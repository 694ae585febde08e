"""The Slack webhook URL is checked at start-up, and the sender thread outlives any failure.

The webhook is a real HTTP server on 127.0.0.1 that answers from a script: an error status,
a dropped connection, then success.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from tests.unit.conftest import wait_until

from conveyor.errors import ConfigError
from conveyor.logs.slack import SlackHandler, webhook_problem
from conveyor.settings import load_settings

SECRET = "XXXXsecretXXXX"


@pytest.mark.parametrize(
    "url",
    [
        f"hooks.slack.com/services/T000/B000/{SECRET}",  # no scheme
        f"http://hooks.slack.com/services/T000/B000/{SECRET}",  # plain http, not loopback
        f"ftp://hooks.slack.com/services/T000/B000/{SECRET}",
        f"https:///services/T000/B000/{SECRET}",  # no host
    ],
)
def test_a_bad_webhook_url_is_a_config_error_that_hides_the_secret(url: str) -> None:
    with pytest.raises(ConfigError) as from_settings:
        load_settings(log_channel="slack", log_slack_webhook_url=url)
    with pytest.raises(ConfigError) as from_handler:
        SlackHandler(url)
    for message in (str(from_settings.value), str(from_handler.value)):
        assert "LOG_SLACK_WEBHOOK_URL" in message and "https://" in message
        assert SECRET not in message and "T000" not in message


def test_the_error_shows_scheme_and_host_only() -> None:
    problem = webhook_problem(f"http://hooks.slack.com/services/T000/B000/{SECRET}")
    assert problem is not None and "http://hooks.slack.com/***" in problem


@pytest.mark.parametrize(
    "url",
    [
        "https://hooks.slack.com/services/T000/B000/abc",
        "http://127.0.0.1:9/hook",  # a local relay (and these tests)
        "http://localhost:9/hook",
    ],
)
def test_good_webhook_urls(url: str) -> None:
    assert webhook_problem(url) is None
    assert load_settings(log_slack_webhook_url=url).log_slack_webhook_url is not None


def test_an_empty_webhook_url_means_unset() -> None:
    assert load_settings(log_slack_webhook_url="").log_slack_webhook_url is None


@dataclass
class Scripted:
    """A webhook answering each POST with the next step: a status code, or "drop"."""

    url: str = ""
    steps: list[int | str] = field(default_factory=list)
    received: list[str] = field(default_factory=list)


@contextmanager
def scripted_webhook(*steps: int | str) -> Iterator[Scripted]:
    state = Scripted(steps=list(steps))
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            with lock:
                step = state.steps.pop(0) if state.steps else 200
                state.received.append(json.loads(body)["text"])
            if step == "drop":  # close without any answer: the client sees an exception
                self.close_connection = True
                self.connection.close()
                return
            self.send_response(int(step))
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, format: str, *args: object) -> None:
            pass

    class Server(ThreadingHTTPServer):
        def handle_error(self, request: object, client_address: object) -> None:
            pass

    server = Server(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    state.url = f"http://127.0.0.1:{server.server_port}/services/T000/B000/{SECRET}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def test_the_sender_thread_survives_errors_and_sends_the_next_message(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with scripted_webhook(500, "drop", 200, 503, 200) as hook:
        # Given a slack handler on a webhook that fails, drops, recovers, fails, recovers
        handler = SlackHandler(hook.url, timeout=2, batch_seconds=0.01)
        logger = logging.getLogger("test.slack.survives")
        logger.propagate = False
        logger.addHandler(handler)
        try:
            for n, expected_sent in enumerate((0, 0, 1, 1, 2)):
                # When each message is logged after the previous one was answered
                logger.error("message %d", n)
                wait_until(lambda n=n: len(hook.received) == n + 1, timeout=5)
                wait_until(lambda n=n: handler.sent_batches + handler.failures == n + 1, timeout=5)
                # Then the thread lives on and the successes are counted
                assert handler._thread.is_alive()
                assert handler.sent_batches == expected_sent
        finally:
            logger.removeHandler(handler)
            handler.close(timeout=2)
    assert hook.received == [f"message {n}" for n in range(5)]
    assert handler.failures == 3
    # And each outage (500+drop, then 503) is reported once, with scheme and host only
    err = capsys.readouterr().err
    assert err.count("slack log channel could not post") == 2
    assert "http://127.0.0.1:" in err and "/***" in err
    assert SECRET not in err and "T000" not in err
