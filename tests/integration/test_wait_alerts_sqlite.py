"""Wait alerts and throughput history on a real SQLite file, on a fake clock."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from conveyor import Conveyor
from conveyor.alerts import Thresholds, WaitAlerts
from conveyor.clock import FakeClock
from conveyor.job import HistoryPoint
from conveyor.logs import configure_logging, reset_logging
from conveyor.settings import load_settings
from conveyor.worker.history import HistoryRecorder


@pytest.fixture
def app(tmp_path: Path) -> Iterator[Conveyor]:
    clock = FakeClock()
    app = Conveyor(f"sqlite:///{tmp_path / 'alerts.db'}", clock=clock)
    try:
        yield app
    finally:
        app.close()


async def test_one_report_and_one_recovery_on_sqlite(app: Conveyor, tmp_path: Path) -> None:
    assert isinstance(app.clock, FakeClock)
    path = tmp_path / "alerts.log"
    configure_logging(load_settings(log_channel="null", log_path=str(path)))
    try:

        @app.task(name="noop", queue="mail")
        async def noop() -> None:
            return None

        first = WaitAlerts(
            app.backend.clone(),
            app.clock,
            Thresholds(default=30),
            channel="single",
            owner="a",
            interval=1.0,
        )
        second = WaitAlerts(
            app.backend.clone(),
            app.clock,
            Thresholds(default=30),
            channel="single",
            owner="b",
            interval=1.0,
        )
        handles = [noop.enqueue() for _ in range(2)]

        # Given jobs waiting 45 s, when both processes check, one reports once
        app.clock.advance(45)
        for _ in range(2):
            await first.check()
            await second.check()
        [report] = path.read_text().splitlines()
        assert "queue 'mail'" in report and "2 job(s) ready" in report

        # When the jobs are cancelled (nothing ready), the holder reports the recovery
        backend = app.backend.clone()
        await backend.open()
        for h in handles:
            assert await backend.admin.cancel(h.id)
        await backend.close()
        await first.check()
        await second.check()
        lines = path.read_text().splitlines()
        assert len(lines) == 2 and "recovered" in lines[1]
        await first._resign()
        await second._resign()
    finally:
        reset_logging()


async def test_history_sums_what_every_worker_sends_on_sqlite(app: Conveyor) -> None:
    assert isinstance(app.clock, FakeClock)

    @app.task(name="noop")
    async def noop() -> None:
        return None

    job = noop.enqueue().info()
    a = HistoryRecorder(app.backend.clone(), app.clock, keep_seconds=3600)
    b = HistoryRecorder(app.backend.clone(), app.clock, keep_seconds=3600)
    a.observe(job, "succeeded", 0.1)
    b.observe(job, "succeeded", 0.1)
    b.observe(job, "dead", 0.1)
    assert await a.flush() and await b.flush()
    minute = int(app.clock.now() // 60) * 60
    backend = app.backend.clone()
    await backend.open()
    try:
        assert await backend.telemetry.history(0) == [HistoryPoint(minute, "default", 2, 1)]
    finally:
        await backend.close()
        await a._close()
        await b._close()
