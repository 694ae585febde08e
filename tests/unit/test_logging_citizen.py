"""Logging that cooperates with the app: the app's own set-up wins, a dictConfig file, an
opt-out, and JSON lines that carry job fields and the caller's ``extra`` as keys."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from conveyor import Conveyor, current_job
from conveyor.errors import ConfigError
from conveyor.logs import configure_logging, ensure_logging, reset_logging
from conveyor.settings import Settings, load_settings
from conveyor.testing import drain


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    level = root.level
    yield
    reset_logging()
    root.setLevel(level)


@contextmanager
def fresh_root() -> Iterator[logging.Logger]:
    """The root logger as a new process has it: no handler at all.

    pytest puts its capture handlers on the root logger for each test phase, so they are
    set aside here, inside the test, and put back (with everything else) afterwards.
    """
    root = logging.getLogger()
    saved, level = root.handlers[:], root.level
    root.handlers.clear()
    try:
        yield root
    finally:
        reset_logging()
        for handler in root.handlers:
            if handler not in saved:
                handler.close()
        root.handlers[:] = saved
        root.setLevel(level)


def settings(tmp_path: Path, **kw: Any) -> Settings:
    return load_settings(log_path=str(tmp_path / "conveyor.log"), **kw)


def json_lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


# -- who owns logging ----------------------------------------------------------------------


def test_an_app_that_called_basic_config_keeps_its_logging(app: Conveyor, tmp_path: Path) -> None:
    with fresh_root() as root:
        # Given an app module that set up logging itself, as `conveyor worker` imports it
        stream = io.StringIO()
        logging.basicConfig(stream=stream, format="APP %(name)s | %(message)s", level="INFO")
        theirs = root.handlers[:]

        @app.task
        def charge(order: int) -> None:
            logging.getLogger("shop").info("charged %d", order)

        # When the worker sets up logging, then runs a job
        assert ensure_logging(settings(tmp_path, log_format="json")) == "app"
        charge.enqueue(7)
        drain(app).raise_on_failure()
        # Then the app's handler is the only one, and every line is in the app's format
        assert root.handlers == theirs
        lines = stream.getvalue().splitlines()
        assert "APP shop | charged 7" in lines
        assert any(line.startswith("APP conveyor.job | job ") for line in lines)
        assert all(line.startswith("APP ") for line in lines)


def test_without_an_app_set_up_conveyor_installs_its_channels(tmp_path: Path) -> None:
    with fresh_root() as root:
        # Given nothing set up logging, or only Conveyor did (the app called configure_logging)
        configure_logging(settings(tmp_path, log_channel="null"))
        # When the worker sets up logging
        outcome = ensure_logging(settings(tmp_path, log_channel="single"))
        # Then Conveyor's channel replaces its earlier one, as before
        assert outcome == "channels"
        assert [type(h).__name__ for h in root.handlers] == ["FileHandler"]
        logging.getLogger("lib").warning("to the file")
        reset_logging()
        assert "WARNING lib: to the file" in (tmp_path / "conveyor.log").read_text()


def test_a_channel_setting_the_app_makes_moot_is_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with fresh_root():
        # Given the app set up logging, and LOG_CHANNEL asks for a stack with Sentry
        logging.basicConfig(stream=io.StringIO())
        wanted = settings(tmp_path, log_channel="stack", log_stack="single")
        # When the worker sets up logging (caplog's handler is on the conveyor logger)
        logging.getLogger("conveyor").addHandler(caplog.handler)
        try:
            assert ensure_logging(wanted) == "app"
        finally:
            logging.getLogger("conveyor").removeHandler(caplog.handler)
    # Then a warning says the settings are not applied, and how to apply them
    [record] = [r for r in caplog.records if r.name == "conveyor"]
    assert record.levelno == logging.WARNING
    assert "LOG_CHANNEL, LOG_STACK are not applied" in record.getMessage()
    assert "configure_logging()" in record.getMessage()


def test_log_config_off_leaves_logging_alone(tmp_path: Path) -> None:
    with fresh_root() as root:
        assert ensure_logging(settings(tmp_path, log_channel="single"), "off") == "off"
        assert root.handlers == []


# -- a dictConfig file ---------------------------------------------------------------------


def dict_config(out: Path) -> dict[str, Any]:
    return {
        "formatters": {"json": {"()": "conveyor.logs.JsonFormatter"}},
        "handlers": {
            "file": {"class": "logging.FileHandler", "filename": str(out), "formatter": "json"}
        },
        "root": {"handlers": ["file"], "level": "INFO"},
    }


def test_a_json_dict_config_file_is_applied_without_silencing_existing_loggers(
    tmp_path: Path,
) -> None:
    with fresh_root():
        # Given a logger the app made at import, and a dictConfig file without version
        early = logging.getLogger("myapp.early")
        out = tmp_path / "out.log"
        path = tmp_path / "logging.json"
        path.write_text(json.dumps(dict_config(out)))
        # When the worker is pointed at the file
        assert ensure_logging(settings(tmp_path), str(path)) == "file"
        early.info("still heard", extra={"order": 7})
        logging.getLogger().handlers[0].flush()
        # Then the file's handler and formatter are used, and the early logger is not muted
        [line] = json_lines(out)
        assert (line["logger"], line["message"], line["order"]) == ("myapp.early", "still heard", 7)


def test_a_toml_dict_config_file_is_applied(tmp_path: Path) -> None:
    with fresh_root() as root:
        out = tmp_path / "out.log"
        path = tmp_path / "logging.toml"
        path.write_text(
            "version = 1\n"
            "[handlers.file]\n"
            f"class = 'logging.FileHandler'\nfilename = '{out}'\n"
            "[root]\nhandlers = ['file']\nlevel = 'WARNING'\n"
        )
        assert ensure_logging(settings(tmp_path), str(path)) == "file"
        assert root.level == logging.WARNING
        assert [type(h).__name__ for h in root.handlers] == ["FileHandler"]


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("missing.json", None, "cannot be read"),
        ("broken.json", "{not json", "is not valid"),
        ("list.json", "[1, 2]", "holds a list, not a dictConfig mapping"),
        ("logging.ini", "[loggers]", "use a .json, .toml or .yaml file"),
        ("bad.json", '{"handlers": {"h": {"class": "no.such.Handler"}}}', "was not applied"),
    ],
)
def test_a_log_config_file_that_cannot_be_used_names_its_absolute_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str, content: str | None, message: str
) -> None:
    (tmp_path / "conf").mkdir()
    if content is not None:
        (tmp_path / "conf" / name).write_text(content)
    monkeypatch.chdir(tmp_path / "conf")
    with fresh_root(), pytest.raises(ConfigError) as caught:
        ensure_logging(settings(tmp_path), name)
    assert message in str(caught.value)
    assert str(tmp_path / "conf" / name) in str(caught.value)


# -- JSON lines ----------------------------------------------------------------------------


def test_json_lines_carry_job_fields_and_the_callers_extra_as_keys(
    app: Conveyor, tmp_path: Path
) -> None:
    # Given JSON lines to a file, and a task that logs with stdlib `extra`
    configure_logging(settings(tmp_path, log_channel="single", log_format="json"))

    @app.task(queue="shop")
    def charge(order: int) -> str:
        logging.getLogger("shop").info("charged", extra={"order": order, "amount": "9.99"})
        return current_job().id

    # When the job runs
    handle = charge.enqueue(7)
    drain(app).raise_on_failure()
    reset_logging()
    lines = json_lines(tmp_path / "conveyor.log")
    job = {
        "job_id": handle.id,
        "task": charge.name,
        "queue": "shop",
        "attempt": 1,
        "correlation_id": handle.id,  # a root job: its own id
    }
    # Then the job's own lines carry its fields as keys, not only inside the message
    started, finished = (ln for ln in lines if ln["logger"] == "conveyor.job")
    assert started.items() >= job.items()
    assert finished.items() >= {**job, "outcome": "succeeded"}.items()
    assert isinstance(finished["duration"], float)
    # and the task's line carries its `extra` and the job's fields
    [mine] = [ln for ln in lines if ln["logger"] == "shop"]
    assert mine.items() >= {"message": "charged", "order": 7, "amount": "9.99", **job}.items()
    # and no LogRecord internals leak in
    assert not {"args", "msg", "levelno", "pathname", "exc_info"} & mine.keys()


def test_json_extra_never_replaces_the_base_fields_and_odd_values_become_text(
    tmp_path: Path,
) -> None:
    configure_logging(settings(tmp_path, log_channel="single", log_format="json"))
    logging.getLogger("lib").warning(
        "plain", extra={"level": "sneaky", "time": 0, "path": tmp_path, "ids": {1, 2}}
    )
    reset_logging()
    [line] = json_lines(tmp_path / "conveyor.log")
    assert (line["level"], line["message"]) == ("warning", "plain")
    assert line["time"] != 0
    assert line["path"] == str(tmp_path)
    assert line["ids"] in ("{1, 2}", "{2, 1}")
