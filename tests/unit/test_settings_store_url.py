"""Which store the settings choose: an empty ``CONVEYOR_URL`` is refused, not the default;
a URL given in code wins over the environment's choice without a word; the seed's SQS queue
names keep their own prefix, even an empty one.
"""

from __future__ import annotations

import sys
import warnings
from functools import partial
from pathlib import Path

import pytest

from conveyor import ConfigError, Conveyor
from conveyor.backends.sqs.naming import Names
from conveyor.backends.sqs.options import parse_url
from conveyor.job import Priority
from conveyor.settings import DEFAULT_URL, ConfigWarning, Settings, load_settings

_STORE_VARIABLES = (
    "CONVEYOR_URL",
    "QUEUE_CONNECTION",
    "DB_CONNECTION",
    "AWS_DEFAULT_REGION",
    "AWS_REGION",
    "SQS_PREFIX",
    "SQS_SUFFIX",
    "SQS_QUEUE",
    "SQS_QUEUE_JOBS",
    "SQS_QUEUE_MAIL",
)


@pytest.fixture(autouse=True)
def _no_store_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in _STORE_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    for name in Settings.model_fields:
        monkeypatch.delenv("CONVEYOR_" + name.upper(), raising=False)


def recorded(make: type[Conveyor] | object, *args: object) -> tuple[object, list[str]]:
    """What ``make(*args)`` returns, and the `ConfigWarning` lines it issued."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        made = make(*args)  # type: ignore[operator]
    return made, [str(w.message) for w in caught if issubclass(w.category, ConfigWarning)]


# -- an empty CONVEYOR_URL -------------------------------------------------------------------
def test_an_empty_conveyor_url_is_refused_not_the_default(monkeypatch: pytest.MonkeyPatch) -> None:
    # Given CONVEYOR_URL= (an EnvironmentFile line whose value was never filled in)
    monkeypatch.setenv("CONVEYOR_URL", "")
    # When the app is imported, it warns naming the variable and what to do...
    app, lines = recorded(Conveyor)
    assert isinstance(app, Conveyor)
    [line] = lines
    assert "CONVEYOR_URL='': the job store's URL is empty; set it" in line
    # ...and a command or worker refuses to start, instead of running on SQLite
    with pytest.raises(ConfigError, match="CONVEYOR_URL='': the job store's URL is empty"):
        app.settings.raise_problems()
    with pytest.raises(ConfigError, match="CONVEYOR_URL=''"):
        load_settings(strict=True)


def test_an_empty_conveyor_url_in_dotenv_names_the_file_and_line(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("APP_NAME=shop\nCONVEYOR_URL=\n")
    settings, _ = recorded(load_settings)
    assert isinstance(settings, Settings)
    [problem] = settings.problems()
    assert f"CONVEYOR_URL='' (in {tmp_path / '.env'}, line 2)" in problem


def test_an_empty_conveyor_url_is_not_a_problem_when_something_else_chooses(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("CONVEYOR_URL", "")
    # The .env's URL (an exported empty variable does not hide it), code, or a flag
    (tmp_path / ".env").write_text("CONVEYOR_URL=memory://\n")
    settings, lines = recorded(load_settings)
    assert isinstance(settings, Settings)
    assert (settings.conveyor_url, settings.problems(), lines) == ("memory://", (), [])
    (tmp_path / ".env").unlink()
    app, lines = recorded(Conveyor, "memory://")
    assert isinstance(app, Conveyor)
    assert (app.url, app.settings.problems(), lines) == ("memory://", (), [])
    settings, lines = recorded(lambda: load_settings(conveyor_url="memory://"))
    assert isinstance(settings, Settings)
    assert (settings.problems(), lines) == ((), [])


def test_unset_conveyor_url_is_still_the_default_without_a_word() -> None:
    settings, lines = recorded(load_settings)
    assert isinstance(settings, Settings)
    assert (settings.conveyor_url, settings.problems(), lines) == (DEFAULT_URL, (), [])


# -- a URL given in code ---------------------------------------------------------------------
def test_a_url_in_code_does_not_warn_about_queue_connection(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Given a Laravel .env Conveyor cannot follow
    monkeypatch.setenv("QUEUE_CONNECTION", "database")
    monkeypatch.setenv("DB_CONNECTION", "mysql")
    # When an app names its store in code, nothing about QUEUE_CONNECTION is said
    app, lines = recorded(Conveyor, "memory://")
    assert isinstance(app, Conveyor)
    assert (app.url, app.settings.problems(), lines) == ("memory://", (), [])
    # While an app that reads the environment is warned, naming the variable
    _, lines = recorded(Conveyor)
    assert any("DB_CONNECTION='mysql'" in line for line in lines), lines


def test_a_url_in_code_that_cannot_name_a_store_fails_at_first_use_not_at_import() -> None:
    # Building the app (at import) never fails on its URL
    app = Conveyor("redis://127.0.0.1:99999/0")

    @app.task(name="store_url.noop")
    def noop() -> None: ...

    # Using it says what is wrong, in one line
    with pytest.raises(ConfigError, match="port '99999' is not a port number") as caught:
        noop.enqueue()
    assert "\n" not in str(caught.value)


# -- the seed's SQS queue names --------------------------------------------------------------
@pytest.mark.parametrize(
    ("variables", "prefix"),
    [
        ({"SQS_QUEUE_JOBS": "jobs"}, ""),
        ({"SQS_QUEUE_JOBS": "jobs", "SQS_QUEUE_MAIL": "mail"}, ""),
        ({"SQS_QUEUE": "default", "SQS_QUEUE_MAIL": "mail"}, ""),
        ({"SQS_QUEUE_JOBS": "shop-jobs"}, "shop-"),
    ],
)
def test_sqs_queue_variables_name_the_sqs_queues_the_store_uses(
    monkeypatch: pytest.MonkeyPatch, variables: dict[str, str], prefix: str
) -> None:
    # Given QUEUE_CONNECTION=sqs with the seed's queue names, the common prefix empty or not
    for name, value in {
        "QUEUE_CONNECTION": "sqs",
        "AWS_DEFAULT_REGION": "eu-west-1",
        **variables,
    }.items():
        monkeypatch.setenv(name, value)
    settings, _ = recorded(load_settings)
    assert isinstance(settings, Settings)
    assert settings.problems() == ()
    # Then the store puts each queue's jobs in exactly the SQS queue its variable names,
    # never under the store's default prefix (conveyor-jobs)
    options = parse_url(settings.conveyor_url)
    assert options.prefix == prefix
    names = Names(options.prefix, fifo=options.fifo)
    for name, value in variables.items():
        queue = name.removeprefix("SQS_QUEUE").removeprefix("_").lower() or "default"
        assert names.of(queue, Priority.NORMAL).sqs == value


# -- conveyor run --url ----------------------------------------------------------------------
def test_run_url_wins_over_a_queue_connection_it_cannot_map(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    from conveyor.cli.run import app_for_workers

    # Given a Laravel .env Conveyor cannot follow, and apps that read the environment
    # (one module per start: a process imports its app once)
    monkeypatch.setenv("QUEUE_CONNECTION", "database")
    monkeypatch.setenv("DB_CONNECTION", "mysql")
    names = ("no_flag_app", "flag_app", "empty_url_app")
    for name in names:
        request.addfinalizer(partial(sys.modules.pop, name, None))
        (tmp_path / f"{name}.py").write_text("from conveyor import Conveyor\napp = Conveyor()\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    # Then without --url `conveyor run` refuses, naming the variable...
    with warnings.catch_warnings(record=True):
        warnings.simplefilter("always")
        with pytest.raises(ConfigError, match="DB_CONNECTION='mysql'"):
            app_for_workers("no_flag_app:app", None)
    # ...and with --url the supervised workers use that store, and nothing is said about
    # the store the environment would have chosen
    app, lines = recorded(app_for_workers, "flag_app:app", "memory://")
    assert isinstance(app, Conveyor)
    assert (app.url, app.settings.problems(), lines) == ("memory://", (), [])
    # An empty CONVEYOR_URL is overruled by --url too
    monkeypatch.setenv("CONVEYOR_URL", "")
    app, lines = recorded(app_for_workers, "empty_url_app:app", "memory://")
    assert isinstance(app, Conveyor)
    assert (app.url, lines) == ("memory://", [])


def test_a_url_flag_is_the_store_of_the_app_while_it_is_imported(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    from conveyor.cli.loading import resolve_app

    monkeypatch.setenv("CONVEYOR_URL", "")
    monkeypatch.syspath_prepend(str(tmp_path))
    source = "from conveyor import Conveyor\napp = Conveyor()\ncoded = Conveyor('memory://')\n"
    (tmp_path / "worker_app.py").write_text(source)
    request.addfinalizer(partial(sys.modules.pop, "worker_app", None))
    # When a command (conveyor worker --url) loads an app built with Conveyor()
    app, lines = recorded(partial(resolve_app, create=True), "worker_app:app", "sqlite:///given.db")
    # Then the app was built on --url's store: no word about the empty CONVEYOR_URL
    assert isinstance(app, Conveyor)
    assert (app.url, app.settings.origin("conveyor_url").kind, lines) == (
        "sqlite:///given.db",
        "argument",
        [],
    )
    # While an app naming its URL in code is still pointed at --url afterwards
    coded = resolve_app("worker_app:coded", "sqlite:///given.db", create=True)
    assert coded.url == "sqlite:///given.db"
    # And a --url that cannot name a store is refused before the app is imported
    with pytest.raises(ConfigError, match="needs a scheme"):
        resolve_app("not_imported_app:app", "given.db")
