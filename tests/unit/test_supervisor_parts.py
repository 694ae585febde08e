"""Supervisor building blocks: back-off, exit descriptions, the metrics line, JSON logs."""

from __future__ import annotations

import json
import logging
import signal
import sys

from conveyor import Conveyor
from conveyor.logs.formatting import JsonFormatter
from conveyor.supervisor.child import backoff, describe_exit, worker_command
from conveyor.supervisor.config import Pool
from conveyor.worker import Worker
from conveyor.worker.metrics import format_text, metrics


def test_backoff_doubles_and_is_capped() -> None:
    assert [backoff(n, 1.0, 10.0) for n in range(6)] == [0.0, 1.0, 2.0, 4.0, 8.0, 10.0]
    assert backoff(10_000, 0.5, 60.0) == 60.0


def test_describe_exit() -> None:
    assert describe_exit(0) == "exit code 0"
    assert describe_exit(-signal.SIGKILL) == "killed by SIGKILL"
    assert describe_exit(4) == "exit code 4 (an async task blocked the event loop)"
    assert "overran its timeout" in describe_exit(3)


def test_worker_command_carries_the_pool_and_the_parent() -> None:
    command = worker_command(Pool("mail", concurrency=4), "app:app", "info")
    assert command[:4] == [sys.executable, "-m", "conveyor", "worker"]
    assert command[command.index("--pool") + 1] == "mail"
    assert command[command.index("--concurrency") + 1] == "4"
    assert "--parent-pid" in command and "--url" not in command


def test_metrics_line(app: Conveyor) -> None:
    worker = Worker(app, pool="mail")
    worker.counts.processed, worker.counts.succeeded, worker.counts.retried = 10, 8, 2
    worker.counts.busy_seconds = 5.0
    m = metrics(worker, previous=4)
    assert m["pool"] == "mail" and m["processed"] == 10 and m["processed_interval"] == 6
    assert (m["completed"], m["failed"]) == (8, 2)
    assert m["avg_duration"] == 0.5 and m["error_rate"] == 0.2
    text = format_text(m)
    assert "processed=10 (+6)" in text and "error_rate=20.0%" in text


def test_json_formatter_puts_metrics_in_fields() -> None:
    record = logging.LogRecord("conveyor.metrics", logging.INFO, __file__, 1, "x", None, None)
    record.metrics = {"processed": 3}
    data = json.loads(JsonFormatter().format(record))
    assert data["message"] == "metrics" and data["processed"] == 3
    assert data["level"] == "info" and data["logger"] == "conveyor.metrics"
