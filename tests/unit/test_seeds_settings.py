"""The seeds' own words in settings: QUEUE_CONNECTION and its companions, SQS queue names,
LOG_DEPRECATIONS_CHANNEL, numeric priorities, worker-wide backoff, and one pool's settings.

Each variable either works or is refused naming itself; none is silently ignored.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest

from conveyor import ConfigError
from conveyor.cli.worker_setup import route_deprecations, settings_of
from conveyor.job import Priority
from conveyor.retry import INHERITED, exponential, resolve_backoff, steps
from conveyor.settings import DEFAULT_URL, ConfigWarning, load_settings
from conveyor.supervisor.config import load_pools
from conveyor.testing import make_test_app
from conveyor.worker.backoff import retry_delay, worker_backoff

SEED_VARIABLES = (
    "CONVEYOR_URL",
    "QUEUE_CONNECTION",
    "REDIS_URL",
    "REDIS_HOST",
    "REDIS_PORT",
    "REDIS_PASSWORD",
    "REDIS_USERNAME",
    "REDIS_DB",
    "DB_URL",
    "DATABASE_URL",
    "DB_CONNECTION",
    "DB_HOST",
    "DB_PORT",
    "DB_DATABASE",
    "DB_USERNAME",
    "DB_PASSWORD",
    "AWS_DEFAULT_REGION",
    "AWS_REGION",
    "SQS_PREFIX",
    "SQS_SUFFIX",
    "SQS_QUEUE",
    "SQS_QUEUE_JOBS",
    "SQS_QUEUE_MAIL",
    "SQS_QUEUE_EVENTS",
)


@pytest.fixture(autouse=True)
def _no_seed_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in SEED_VARIABLES:
        monkeypatch.delenv(name, raising=False)


def settings_with(monkeypatch: pytest.MonkeyPatch, **env: str) -> tuple[str, tuple[str, ...]]:
    """The store URL and the problems read from ``env``, warnings recorded, not raised."""
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with warnings.catch_warnings(record=True):
        warnings.simplefilter("always")
        s = load_settings()
    return s.conveyor_url, s.problems()


# -- QUEUE_CONNECTION ----------------------------------------------------------------------
def test_redis_connection_is_built_from_the_laravel_variables(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    url, problems = settings_with(
        monkeypatch,
        QUEUE_CONNECTION="redis",
        REDIS_HOST="cache.internal",
        REDIS_PORT="6380",
        REDIS_PASSWORD="p@ss/word",
        REDIS_DB="3",
    )
    assert (url, problems) == ("redis://:p%40ss%2Fword@cache.internal:6380/3", ())


def test_laravel_null_password_means_none_and_redis_url_is_used_when_set(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert settings_with(monkeypatch, QUEUE_CONNECTION="redis", REDIS_PASSWORD="null")[0] == (
        "redis://127.0.0.1:6379/0"
    )
    monkeypatch.setenv("REDIS_URL", "redis://queue.internal:6379/1")
    url, _ = settings_with(monkeypatch)
    assert url == "redis://queue.internal:6379/1"


def test_database_connection_maps_pgsql_and_sqlite(monkeypatch: pytest.MonkeyPatch) -> None:
    url, _ = settings_with(
        monkeypatch,
        QUEUE_CONNECTION="database",
        DB_CONNECTION="pgsql",
        DB_HOST="db",
        DB_DATABASE="shop",
        DB_USERNAME="forge",
        DB_PASSWORD="secret",
    )
    assert url == "postgresql://forge:secret@db:5432/shop"
    monkeypatch.setenv("DB_CONNECTION", "sqlite")
    monkeypatch.setenv("DB_DATABASE", "/srv/shop/database.sqlite")
    assert settings_with(monkeypatch)[0] == "sqlite:////srv/shop/database.sqlite"
    # An IPv6 host is written in brackets
    monkeypatch.setenv("DB_CONNECTION", "pgsql")
    monkeypatch.setenv("DB_HOST", "fd00::5")
    monkeypatch.setenv("DB_DATABASE", "shop")
    assert settings_with(monkeypatch)[0] == "postgresql://forge:secret@[fd00::5]:5432/shop"


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"QUEUE_CONNECTION": "database", "DB_CONNECTION": "mysql"}, "DB_CONNECTION='mysql'"),
        ({"QUEUE_CONNECTION": "sync"}, "QUEUE_CONNECTION=sync"),
        ({"QUEUE_CONNECTION": "beanstalkd"}, "QUEUE_CONNECTION='beanstalkd'"),
        ({"QUEUE_CONNECTION": "sqs"}, "AWS_DEFAULT_REGION"),
        (
            {"QUEUE_CONNECTION": "sqs", "AWS_DEFAULT_REGION": "eu-west-1", "SQS_SUFFIX": "-p"},
            "SQS_SUFFIX",
        ),
    ],
)
def test_what_cannot_be_mapped_is_refused_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str], named: str
) -> None:
    # Given a Laravel .env Conveyor cannot follow, the import still works on the default...
    url, problems = settings_with(monkeypatch, **env)
    assert url == DEFAULT_URL
    # ...and the problem names the variable, so commands refuse to start with it
    [problem] = problems
    assert named in problem
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError, match="QUEUE_CONNECTION"):
        load_settings(strict=True)


def test_sqs_connection_takes_the_region_and_the_queue_names_prefix(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    url, problems = settings_with(
        monkeypatch,
        QUEUE_CONNECTION="sqs",
        SQS_PREFIX="https://sqs.eu-west-1.amazonaws.com/123456789012",
        SQS_QUEUE_JOBS="shop-prod-jobs",
        SQS_QUEUE_MAIL="shop-prod-mail",
        SQS_QUEUE_EVENTS="shop-prod-events",
    )
    assert (url, problems) == ("sqs://eu-west-1?prefix=shop-prod-", ())


def test_sqs_queue_urls_give_their_names(monkeypatch: pytest.MonkeyPatch) -> None:
    # Laravel takes a queue's URL as well as its name
    account = "https://sqs.eu-west-1.amazonaws.com/123456789012"
    url, problems = settings_with(
        monkeypatch,
        QUEUE_CONNECTION="sqs",
        AWS_DEFAULT_REGION="eu-west-1",
        SQS_QUEUE_JOBS=f"{account}/shop-jobs",
        SQS_QUEUE_MAIL=f"{account}/shop-mail",
    )
    assert (url, problems) == ("sqs://eu-west-1?prefix=shop-", ())
    # A common start no SQS queue name can have is refused, naming the variables
    _, [problem] = settings_with(monkeypatch, SQS_QUEUE_JOBS="a.b-jobs", SQS_QUEUE_MAIL="a.b-mail")
    assert "SQS_QUEUE_JOBS, SQS_QUEUE_MAIL: the common start 'a.b-'" in problem


def test_sqs_queue_names_are_the_sqs_stores_names(monkeypatch: pytest.MonkeyPatch) -> None:
    from conveyor.backends.sqs.naming import Names
    from conveyor.backends.sqs.options import parse_url

    # Laravel's default .env names the default queue `default`: no prefix at all
    url, _ = settings_with(
        monkeypatch, QUEUE_CONNECTION="sqs", AWS_DEFAULT_REGION="eu-west-1", SQS_QUEUE="default"
    )
    assert url == "sqs://eu-west-1?prefix="
    assert parse_url(url).prefix == ""
    # FIFO queues: every name ends in .fifo
    monkeypatch.delenv("SQS_QUEUE")
    url, _ = settings_with(monkeypatch, SQS_QUEUE_MAIL="shop-mail.fifo")
    options = parse_url(url)
    assert (options.prefix, options.fifo) == ("shop-", True)
    assert Names(options.prefix, fifo=options.fifo).of("mail", Priority.NORMAL).sqs == (
        "shop-mail.fifo"
    )


def test_sqs_queue_names_that_do_not_follow_one_prefix_are_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    base = {"QUEUE_CONNECTION": "sqs", "AWS_DEFAULT_REGION": "eu-west-1"}
    _, [problem] = settings_with(monkeypatch, **base, SQS_QUEUE_MAIL="emails")
    assert "SQS_QUEUE_MAIL='emails' does not end with the queue name 'mail'" in problem
    monkeypatch.setenv("SQS_QUEUE_MAIL", "a-mail")
    _, [problem] = settings_with(monkeypatch, SQS_QUEUE_JOBS="b-jobs")
    assert "different prefixes" in problem and "SQS_QUEUE_JOBS" in problem


def test_sqs_queue_names_without_the_sqs_store_are_reported(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("SQS_QUEUE_MAIL", "shop-mail")
    with pytest.warns(ConfigWarning, match="SQS_QUEUE_MAIL.*not used"):
        load_settings()


def test_conveyor_url_wins_and_a_different_queue_connection_is_reported(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CONVEYOR_URL", "memory://")
    monkeypatch.setenv("QUEUE_CONNECTION", "redis")
    with pytest.warns(ConfigWarning, match="QUEUE_CONNECTION='redis' is not used"):
        assert load_settings().conveyor_url == "memory://"


def test_a_store_url_given_in_code_wins_over_a_queue_connection_it_cannot_map(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from conveyor import Conveyor

    # Given a Laravel .env whose queue connection Conveyor cannot follow
    monkeypatch.setenv("QUEUE_CONNECTION", "database")
    monkeypatch.setenv("DB_CONNECTION", "mysql")
    with warnings.catch_warnings(record=True):
        warnings.simplefilter("always")
        # Then the environment alone refuses to start...
        with pytest.raises(ConfigError, match="DB_CONNECTION='mysql'"):
            load_settings().raise_problems()
        # ...but an app that names its store does not read QUEUE_CONNECTION at all
        app = Conveyor("memory://")
    app.settings.raise_problems()
    assert (app.url, app.settings.problems()) == ("memory://", ())


# -- LOG_DEPRECATIONS_CHANNEL ----------------------------------------------------------------
@pytest.fixture
def restore_warnings() -> Iterator[None]:
    shown, logger = warnings.showwarning, logging.getLogger("conveyor.deprecations")
    handlers = logger.handlers[:]
    with warnings.catch_warnings():
        yield
    warnings.showwarning = shown
    for handler in logger.handlers:
        handler.close()
    logger.handlers[:] = handlers
    logger.propagate = True


def test_deprecations_go_to_their_channel_and_other_warnings_do_not(
    tmp_path: Path, restore_warnings: None
) -> None:
    log_file = tmp_path / "deprecations.log"
    settings = load_settings(log_deprecations_channel="single", log_path=str(log_file))
    assert route_deprecations(settings)
    warnings.resetwarnings()
    warnings.warn("old_api() is deprecated; use new_api()", DeprecationWarning, stacklevel=1)
    with pytest.warns(UserWarning, match="not a deprecation"):
        warnings.warn("not a deprecation", UserWarning, stacklevel=1)
    for handler in logging.getLogger("conveyor.deprecations").handlers:
        handler.flush()
    text = log_file.read_text()
    assert "DeprecationWarning: old_api() is deprecated; use new_api()" in text
    assert "not a deprecation" not in text


def test_an_unknown_deprecations_channel_is_refused_naming_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("LOG_DEPRECATIONS_CHANNEL", "papertrail")
    with pytest.raises(ConfigError, match=r"LOG_DEPRECATIONS_CHANNEL='papertrail'.*single"):
        load_settings(strict=True)
    monkeypatch.delenv("LOG_DEPRECATIONS_CHANNEL")
    assert not route_deprecations(load_settings())


# -- numeric priority ----------------------------------------------------------------------
@pytest.mark.parametrize(
    ("value", "level"),
    [
        (10, Priority.HIGH),
        (1, Priority.HIGH),
        ("+3", Priority.HIGH),
        (0, Priority.NORMAL),
        ("0", Priority.NORMAL),
        (-1, Priority.LOW),
        ("-100", Priority.LOW),
        ("high", Priority.HIGH),
        (Priority.LOW, Priority.LOW),
    ],
)
def test_numbers_map_onto_the_three_levels_by_sign(value: str | int, level: Priority) -> None:
    assert Priority.parse(value) is level


@pytest.mark.parametrize("value", [True, 1.5, "urgent", "1e3", ""])
def test_what_is_not_a_priority_is_refused(value: object) -> None:
    with pytest.raises(ConfigError, match="larger runs first"):
        Priority.parse(value)  # type: ignore[arg-type]


def test_numeric_priorities_are_accepted_by_tasks_and_enqueue_options(tmp_path: Path) -> None:
    app = make_test_app()

    @app.task(name="urgent", priority=10)
    def urgent() -> None: ...

    assert urgent.priority is Priority.HIGH
    handle = urgent.options(priority=-5).enqueue()  # type: ignore[arg-type]
    job = app.backend.get_sync(handle.id)
    assert job is not None and job.priority is Priority.LOW
    assert load_settings(worker_priorities="1,0").worker_priorities == (
        Priority.HIGH,
        Priority.NORMAL,
    )
    # A pool's priorities too: a supervised worker gets them as names
    pool = load_pools({"URGENT_WORKER_PRIORITIES": "10,-1"}, tmp_path).pool("urgent")
    assert pool.worker_args()[-2:] == ["--priorities", "high,low"]


# -- worker-wide backoff ---------------------------------------------------------------------
def test_tasks_without_a_backoff_inherit_the_workers() -> None:
    app = make_test_app(worker_backoff="1,5,10")

    @app.task(name="plain")
    def plain() -> None: ...

    @app.task(name="own", backoff=2)
    def own() -> None: ...

    assert plain.backoff is INHERITED and resolve_backoff(None) == exponential()
    assert [retry_delay(plain, n) for n in (1, 2, 3, 4)] == [1.0, 5.0, 10.0, 10.0]
    assert [retry_delay(own, n) for n in (1, 3)] == [2.0, 2.0]


def test_the_default_exponential_backoff_takes_the_workers_base_and_max() -> None:
    policy = worker_backoff(load_settings(worker_backoff_base=3, worker_backoff_max=20))
    assert policy == exponential(base=3.0, maximum=20.0)
    assert all(1.5 <= policy(1) <= 3 for _ in range(20))
    assert all(10 <= policy(9) <= 20 for _ in range(20))
    assert resolve_backoff([0, 30]) == steps((0.0, 30.0))


def test_a_wrong_backoff_is_refused_naming_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WORKER_BACKOFF", "1,soon")
    with pytest.raises(ConfigError, match="WORKER_BACKOFF='1,soon'"):
        load_settings(strict=True)


def test_a_thin_worker_says_it_ignores_the_queue_order() -> None:
    from conveyor.modes import resolve_mode

    settings = load_settings(worker_mode="thin", worker_queues="a,b", worker_queues_ordered=True)
    assert (
        "WORKER_QUEUES_ORDERED (every queue is served in WORKER_MODE=thin)"
        in resolve_mode(settings).ignored
    )


@pytest.mark.parametrize(
    ("env", "named"),
    [
        (
            {"WORKER_ERROR_BACKOFF": "30"},
            "WORKER_ERROR_BACKOFF=30 is above WORKER_ERROR_BACKOFF_MAX=10",
        ),
        ({"WORKER_BACKOFF_MAX": "0.5"}, "WORKER_BACKOFF_BASE=1 is above WORKER_BACKOFF_MAX=0.5"),
    ],
)
def test_a_first_wait_above_its_cap_is_refused_naming_both(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str], named: str
) -> None:
    # A first wait the cap would silently cut: both fall back to their defaults, and
    # commands refuse to start naming the two variables
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.warns(ConfigWarning, match=named):
        s = load_settings()
    assert (s.worker_error_backoff, s.worker_backoff_max) == (0.1, 3600.0)
    with pytest.raises(ConfigError, match=named):
        s.raise_problems()
    with pytest.raises(ConfigError, match="the first wait cannot be longer"):
        load_settings(worker_backoff_base=10, worker_backoff_max=5)


# -- one pool's worker -----------------------------------------------------------------------
def test_a_pools_worker_takes_the_pools_settings(tmp_path: Path) -> None:
    env = {"JOBS_WORKER_MAX_JOBS": "1", "JOBS_WORKER_QUEUES": "jobs", "MAIL_WORKER_TRIES": "3"}
    config = load_pools(env, tmp_path)
    assert settings_of(config.for_worker("jobs")) == {
        "worker_queues": ("jobs",),
        "worker_max_jobs": 1,
    }
    mail = settings_of(config.for_worker("mail"))
    assert mail == {"worker_queues": ("mail",), "worker_tries": 3, "max_retries": 2}


def test_every_pool_key_reaches_a_pools_worker() -> None:
    # A key added to the pools but not mapped would be dropped by `conveyor worker --pool`
    from conveyor.cli.worker_setup import _POOL_FIELDS
    from conveyor.supervisor.pool_keys import KEYS

    mapped_apart = {"processes", "timeout", "tries"}  # a count of processes; two fields each
    assert set(KEYS) == set(_POOL_FIELDS) | mapped_apart


def test_the_default_pool_serves_every_queue_as_conveyor_run_starts_it(tmp_path: Path) -> None:
    # Without QUEUE_MULTI_WORKER, `conveyor run` starts the default pool on every queue
    assert settings_of(load_pools({}, tmp_path).for_worker("jobs")) == {}
    multi = load_pools({"QUEUE_MULTI_WORKER": "true"}, tmp_path)
    assert settings_of(multi.for_worker("jobs")) == {"worker_queues": ("jobs", "default")}


def test_a_pools_backoff_is_its_workers(tmp_path: Path) -> None:
    pool = load_pools({"MAIL_WORKER_BACKOFF": "1,5,10"}, tmp_path).pool("mail")
    assert pool.worker_args()[-2:] == ["--backoff", "1,5,10"]
    assert settings_of(pool)["worker_backoff"] == (1.0, 5.0, 10.0)
    with pytest.raises(ConfigError, match="MAIL_WORKER_BACKOFF='soon'"):
        load_pools({"MAIL_WORKER_BACKOFF": "soon"}, tmp_path)


def test_an_ordered_pool_passes_queue_in_order(tmp_path: Path) -> None:
    env = {"MAIL_WORKER_QUEUES": "mail-high,mail", "MAIL_WORKER_QUEUES_ORDERED": "yes"}
    pool = load_pools(env, tmp_path).pool("mail")
    assert pool.worker_args() == ["--pool", "mail", "--queue", "mail-high,mail"]
    with pytest.raises(ConfigError, match="MAIL_WORKER_QUEUES_ORDERED='maybe'"):
        load_pools({"MAIL_WORKER_QUEUES_ORDERED": "maybe"}, tmp_path)
