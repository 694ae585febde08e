"""The SQS store's tests run against one moto_server per test run, on loopback.

Each test gets its own queue prefix (``sqs_url``), so tests never see each other's queues.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from .moto import CREDENTIALS, MotoServer


@pytest.fixture(scope="session")
def moto_endpoint(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The endpoint of a moto_server started for this test run (stopped at its end)."""
    server = MotoServer(Path(tmp_path_factory.mktemp("moto")) / "moto.log")
    server.start()
    try:
        yield server.endpoint
    finally:
        server.stop()


@pytest.fixture(autouse=True)
def _aws_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    """Credentials for moto, found by the AWS chain here and in the workers a test starts
    (only while an SQS test runs: other tests see the environment as it was)."""
    for name, value in CREDENTIALS.items():
        monkeypatch.setenv(name, value)


@pytest.fixture
def new_sqs_url(moto_endpoint: str) -> Callable[..., str]:
    """A function giving the URL of a new, empty SQS store (its own prefix) on moto."""

    def make(**options: str) -> str:
        options.setdefault("prefix", f"t{os.urandom(5).hex()}-")
        extra = "".join(f"&{k}={v}" for k, v in options.items())
        return f"sqs://eu-west-1?endpoint_url={moto_endpoint}{extra}"

    return make


@pytest.fixture
def sqs_url(new_sqs_url: Callable[..., str]) -> str:
    """The URL of a new, empty SQS store on moto."""
    return new_sqs_url()
