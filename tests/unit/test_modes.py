"""Worker modes: WORKER_MODE → routing, concurrency and scheduler, and the settings' errors."""

from __future__ import annotations

import pytest

from conveyor import ConfigError, Conveyor, Priority, Worker
from conveyor.job import Routing
from conveyor.modes import ASYNC_CONCURRENCY, THIN_CONCURRENCY, all_async, resolve_mode
from conveyor.settings import load_settings


def plan(**settings: object):  # type: ignore[no-untyped-def]
    return resolve_mode(load_settings(**settings))


def test_thin_serves_everything_with_five_slots_and_the_scheduler() -> None:
    p = plan(worker_mode="thin")
    assert (p.routing, p.concurrency, p.scheduler) == (Routing(), THIN_CONCURRENCY, True)


def test_thin_keeps_an_explicit_concurrency_and_ignores_filters() -> None:
    p = plan(worker_mode="thin", worker_concurrency=2, worker_priorities="high")
    assert (p.routing, p.concurrency) == (Routing(), 2)
    assert p.ignored == ("WORKER_PRIORITIES (every priority is served in WORKER_MODE=thin)",)


def test_default_serves_every_priority_and_task_in_its_queues() -> None:
    p = plan(
        worker_mode="default",
        worker_queues="mail,jobs",
        worker_priorities="high",
        worker_job_types="app.a",
    )
    assert p.routing == Routing(queues=("mail", "jobs"))
    assert (p.concurrency, p.scheduler) == (10, True)
    assert len(p.ignored) == 2


def test_default_scheduler_can_be_turned_off() -> None:
    assert not plan(worker_mode="default", enable_scheduler="false").scheduler


def test_specialized_serves_only_its_priorities_without_a_scheduler() -> None:
    p = plan(worker_mode="specialized", worker_priorities="high", worker_concurrency=20)
    assert p.routing == Routing(priorities=(Priority.HIGH,))
    assert (p.concurrency, p.scheduler) == (20, False)
    assert plan(
        worker_mode="specialized", worker_priorities="high", enable_scheduler=True
    ).scheduler


def test_job_specialized_serves_only_its_task_types() -> None:
    p = plan(worker_mode="job-specialized", worker_job_types="app.send_email, app.resize")
    assert p.routing == Routing(tasks=("app.send_email", "app.resize"))
    assert not p.scheduler


def test_scheduler_only_has_no_job_slots() -> None:
    p = plan(worker_mode="scheduler-only")
    assert (p.concurrency, p.scheduler) == (0, True)


def test_unset_mode_keeps_the_filters_and_the_scheduler() -> None:
    p = plan(worker_priorities="high,normal", worker_job_types="app.a")
    assert p.routing == Routing(priorities=(Priority.HIGH, Priority.NORMAL), tasks=("app.a",))
    assert (p.mode, p.scheduler, p.ignored) == ("default", True, ())


def test_mode_names_accept_underscores_and_case() -> None:
    assert plan(worker_mode="Job_Specialized", worker_job_types="a").mode == "job-specialized"


@pytest.mark.parametrize(
    ("settings", "names"),
    [
        ({"worker_mode": "specialized"}, ["WORKER_MODE=specialized", "WORKER_PRIORITIES"]),
        ({"worker_mode": "job-specialized"}, ["WORKER_MODE=job-specialized", "WORKER_JOB_TYPES"]),
        (
            {"worker_mode": "scheduler-only", "enable_scheduler": False},
            ["WORKER_MODE=scheduler-only", "ENABLE_SCHEDULER=false"],
        ),
        ({"worker_mode": "fat"}, ["WORKER_MODE='fat'", "thin", "scheduler-only"]),
        ({"scheduler_interval": 0.05}, ["SCHEDULER_INTERVAL=0.05", "0.1 to 60"]),
        ({"scheduler_interval": 61}, ["SCHEDULER_INTERVAL=61", "0.1 to 60"]),
    ],
)
def test_settings_errors_name_the_variables(settings: dict[str, object], names: list[str]) -> None:
    with pytest.raises(ConfigError) as info:
        load_settings(**settings)
    for name in names:
        assert name in str(info.value)


def test_mode_errors_come_from_the_environment_too(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WORKER_MODE", "specialized")
    with pytest.raises(ConfigError, match="WORKER_PRIORITIES is not set"):
        load_settings(strict=True)  # (without strict: skipped with a warning)
    monkeypatch.setenv("WORKER_PRIORITIES", "low")
    assert load_settings().worker_priorities == (Priority.LOW,)


def test_resolve_rechecks_settings_changed_in_code() -> None:
    s = load_settings().model_copy(update={"worker_mode": "specialized"})
    with pytest.raises(ConfigError, match="WORKER_PRIORITIES"):
        resolve_mode(s)


# -- the default concurrency -----------------------------------------------------------------
def _app_with(*kinds: str) -> Conveyor:
    app = Conveyor("memory://")
    for n, kind in enumerate(kinds):
        if kind == "async":

            async def a() -> None:
                pass

            app.task(name=f"t.async{n}")(a)
        else:

            def s() -> None:
                pass

            app.task(name=f"t.sync{n}")(s)
    return app


def test_a_worker_of_async_tasks_only_runs_more_at_once_by_default() -> None:
    app = _app_with("async", "async")
    assert all_async(app.tasks.values())
    assert resolve_mode(app.settings, async_only=True).concurrency == ASYNC_CONCURRENCY
    assert Worker(app).concurrency == ASYNC_CONCURRENCY


def test_one_plain_def_task_keeps_the_default_of_ten() -> None:
    app = _app_with("async", "sync")
    assert not all_async(app.tasks.values())
    assert Worker(app).concurrency == 10
    # unless the worker runs only the async ones
    assert all_async(app.tasks.values(), ["t.async0"])
    assert Worker(app, job_types=["t.async0"]).concurrency == ASYNC_CONCURRENCY


def test_an_app_without_tasks_keeps_the_default() -> None:
    assert not all_async([])
    assert Worker(Conveyor("memory://")).concurrency == 10


def test_a_concurrency_that_was_set_always_wins() -> None:
    app = _app_with("async")
    app.settings = load_settings(worker_concurrency=7)
    assert resolve_mode(app.settings, async_only=True).concurrency == 7
    assert Worker(app).concurrency == 7
    assert Worker(app, concurrency=3).concurrency == 3
    assert resolve_mode(load_settings(worker_mode="thin"), async_only=True).concurrency == (
        THIN_CONCURRENCY
    )
