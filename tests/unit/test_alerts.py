"""Wait-time alerts: one report per incident on a real logging channel, on a fake clock."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.unit.partial_stores import partial_store

from conveyor import Conveyor
from conveyor.alerts import LEASE, Thresholds, WaitAlerts
from conveyor.clock import FakeClock
from conveyor.errors import ConfigError
from conveyor.job import Lease, Routing
from conveyor.logs import configure_logging, reset_logging
from conveyor.settings import load_settings


@pytest.fixture
def alert_log(tmp_path: Path) -> Iterator[Path]:
    """The ``single`` channel writes to this file; the default channel is ``null``."""
    path = tmp_path / "alerts.log"
    configure_logging(load_settings(log_channel="null", log_path=str(path)))
    try:
        yield path
    finally:
        reset_logging()


def lines(path: Path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []


def enqueue(app: Conveyor, queue: str, n: int = 1) -> None:
    task = app.tasks.get("noop")
    if task is None:

        @app.task(name="noop")
        async def noop() -> None:
            return None

        task = noop
    for _ in range(n):
        task.options(queue=queue).enqueue()


async def test_one_report_per_incident_and_one_recovery(
    app: Conveyor, clock: FakeClock, alert_log: Path
) -> None:
    # Given a 60 s threshold on every queue, reported on the single channel
    alerts = WaitAlerts(app.backend.clone(), clock, Thresholds(default=60), channel="single")
    enqueue(app, "mail", 3)

    # When the oldest job has waited 30 s, nothing is reported
    clock.advance(30)
    await alerts.check()
    assert alerts.leading
    assert lines(alert_log) == []

    # When it has waited 90 s, one line says which queue, how long, the threshold, how many
    clock.advance(60)
    await alerts.check()
    [report] = lines(alert_log)
    assert "queue 'mail'" in report and "1m 30s" in report and "threshold 1m 0s" in report
    assert "3 job(s) ready" in report and "ERROR" in report
    assert "ready=3" in report and "queue=mail" in report

    # When it stays above for longer, nothing more is reported
    clock.advance(600)
    await alerts.check()
    await alerts.check()
    assert len(lines(alert_log)) == 1

    # When the backlog is worked off, one "recovered" line follows
    async def drain() -> None:
        for job in await app.backend.claim("w", Routing(), 10, 30):
            assert job.lease_token is not None
            await app.backend.complete(Lease(job.id, job.lease_token), None)

    await drain()
    await alerts.check()
    await alerts.check()
    assert len(lines(alert_log)) == 2
    assert "queue 'mail' recovered" in lines(alert_log)[1]

    # and a new backlog is a new incident.
    enqueue(app, "mail")
    clock.advance(61)
    await alerts.check()
    assert len(lines(alert_log)) == 3


async def test_per_queue_thresholds_and_globs_win_over_the_default(
    app: Conveyor, clock: FakeClock, alert_log: Path
) -> None:
    settings = load_settings(
        alert_wait_seconds=600,
        alert_wait_queues="mail=60,reports-*=300",
        alert_channel="single",
    )
    alerts = WaitAlerts.from_settings(app.backend.clone(), clock, settings)
    assert alerts is not None
    assert alerts.thresholds.of("mail") == 60
    assert alerts.thresholds.of("reports-daily") == 300
    assert alerts.thresholds.of("jobs") == 600
    for queue in ("mail", "reports-daily", "jobs"):
        enqueue(app, queue)

    clock.advance(120)
    await alerts.check()
    assert ["mail" in line for line in lines(alert_log)] == [True]
    clock.advance(240)
    await alerts.check()
    assert len(lines(alert_log)) == 2 and "reports-daily" in lines(alert_log)[1]
    clock.advance(300)
    await alerts.check()
    assert len(lines(alert_log)) == 3 and "'jobs'" in lines(alert_log)[2]


async def test_only_queues_with_a_threshold_are_watched(
    app: Conveyor, clock: FakeClock, alert_log: Path
) -> None:
    alerts = WaitAlerts(
        app.backend.clone(), clock, Thresholds(queues={"mail": 10}), channel="single"
    )
    enqueue(app, "jobs")
    clock.advance(3600)
    await alerts.check()
    assert lines(alert_log) == []


async def test_only_the_lease_holder_reports(
    app: Conveyor, clock: FakeClock, alert_log: Path
) -> None:
    # Given two processes' alerts on one store
    first = WaitAlerts(
        app.backend.clone(), clock, Thresholds(default=5), channel="single", owner="one"
    )
    second = WaitAlerts(
        app.backend.clone(), clock, Thresholds(default=5), channel="single", owner="two"
    )
    enqueue(app, "mail")
    clock.advance(10)

    # When both check, one reports
    await first.check()
    await second.check()
    assert (first.leading, second.leading) == (True, False)
    assert len(lines(alert_log)) == 1

    # When the holder stops, it gives the lease up and the other takes over
    await first._resign()
    await second.check()
    assert second.leading
    assert len(lines(alert_log)) == 2  # a hand-over reports an incident in progress again
    assert not await app.backend.scheduling.acquire_lease(LEASE, "someone-else", 10)


def test_unknown_channels_are_refused_with_the_names_there_are(
    app: Conveyor, clock: FakeClock
) -> None:
    with pytest.raises(ConfigError, match="ALERT_CHANNEL='pager' is not a log channel"):
        load_settings(alert_channel="pager", alert_wait_seconds=60)
    with pytest.raises(ConfigError, match="LOG_SLACK_WEBHOOK_URL"):
        load_settings(alert_channel="slack")
    with pytest.raises(ConfigError, match="not QUEUE=SECONDS"):
        load_settings(alert_wait_queues="mail:60")
    with pytest.raises(ConfigError, match="'pager' is not a log channel"):
        WaitAlerts(app.backend, clock, Thresholds(default=1), channel="pager")


def test_no_threshold_means_no_alerts(app: Conveyor, clock: FakeClock) -> None:
    assert WaitAlerts.from_settings(app.backend, clock, load_settings()) is None


@pytest.mark.parametrize("keep", [("scheduling",), ("admin",)])
def test_a_store_without_admin_and_scheduling_turns_alerts_off_with_one_warning(
    clock: FakeClock, caplog: pytest.LogCaptureFixture, keep: tuple[str, ...]
) -> None:
    store = partial_store(*keep)
    settings = load_settings(alert_wait_seconds=60)
    with caplog.at_level(logging.WARNING, logger="conveyor.alerts"):
        assert WaitAlerts.from_settings(store, clock, settings) is None
    [record] = caplog.records
    assert record.getMessage().startswith("wait alerts are off: the partial:// store ")
    assert "wait alerts (ALERT_WAIT_*) needs" in record.getMessage()
